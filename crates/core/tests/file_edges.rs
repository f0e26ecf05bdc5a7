//! File edges users hit, on docker and local alike: symlinks survive an import and an export as
//! links, a copy to the host lands whole or not at all, a failing reader writes nothing, a link
//! loop or a file written over a directory is a typed refusal that changes nothing, and so are
//! settings and imports the API refuses.

use dagger_sandbox::{
    BackendChoice, EntryKind, Error, ErrorCode, ExecOptions, RefreshOptions, Sandbox, SandboxConfig, LIST_MAX_ENTRIES,
};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";

/// The backends these checks run on here: local always, docker when an engine answers (required
/// with `DAGGER_SANDBOX_REQUIRE_DOCKER=1`).
async fn backends() -> Vec<BackendChoice> {
    let mut out = vec![BackendChoice::Local];
    match dagger_sandbox::engines::docker_available().await {
        Ok(_) => out.push(BackendChoice::Docker),
        Err(why) if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but no Docker engine answers: {why}")
        }
        Err(why) => println!("SKIPPED: the docker half of these checks: {why}"),
    }
    out
}

async fn create(backend: BackendChoice) -> Sandbox {
    Sandbox::create(SandboxConfig::new().backend(backend).fallback(false).image(IMAGE)).await.unwrap()
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(r: Result<T, Error>, code: ErrorCode) -> Error {
    match r {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "expected {code}, got {}: {e}", e.code());
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_survive_import_and_export_as_links() {
    for backend in backends().await {
        let sb = create(backend).await;
        let host = tempfile::tempdir().unwrap();
        let src = host.path().join("src");
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::write(src.join("lib/real.txt"), "real").unwrap();
        std::os::unix::fs::symlink("lib/real.txt", src.join("alias")).unwrap();
        std::os::unix::fs::symlink("does-not-exist", src.join("dangling")).unwrap();
        sb.refresh_from_host(&src, "proj", RefreshOptions::default()).await.unwrap();

        let entries = sb.list_directory("proj").await.unwrap();
        let kind = |n: &str| entries.iter().find(|e| e.name == n).map(|e| e.kind);
        assert_eq!(kind("alias"), Some(EntryKind::Symlink), "{backend:?}: {entries:?}");
        assert_eq!(kind("dangling"), Some(EntryKind::Symlink), "{backend:?}: a dangling link is kept too");
        assert_eq!(sb.read_file("proj/alias").await.unwrap(), b"real", "{backend:?}: reads follow the link");
        let linked = sb.exec("readlink proj/alias; readlink proj/dangling", ExecOptions::new()).await.unwrap();
        assert_eq!(linked.stdout, "lib/real.txt\ndoes-not-exist\n", "{backend:?}: the targets are kept as written");

        // Out again: the links come back as links with their targets, not as copies.
        let out = host.path().join("out");
        sb.export_directory("proj", &out).await.unwrap();
        assert_eq!(std::fs::read_link(out.join("alias")).unwrap(), std::path::Path::new("lib/real.txt"));
        assert_eq!(std::fs::read_link(out.join("dangling")).unwrap(), std::path::Path::new("does-not-exist"));
        assert_eq!(std::fs::read_to_string(out.join("lib/real.txt")).unwrap(), "real");
        sb.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_to_the_host_lands_whole_or_leaves_the_host_untouched() {
    for backend in backends().await {
        let sb = create(backend).await;
        let host = tempfile::tempdir().unwrap();
        let dest = host.path().join("report.txt");
        std::fs::write(&dest, "previous").unwrap();
        sb.write_file("out/report.txt", "fresh result\n").await.unwrap();

        assert_eq!(sb.read_file_to_host("out/report.txt", &dest).await.unwrap(), 13, "{backend:?}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "fresh result\n", "{backend:?}");

        // A missing file or a directory: a typed error, the earlier copy kept, no temp file left.
        expect_code(sb.read_file_to_host("out/missing.txt", &dest).await, ErrorCode::NotFound);
        expect_code(sb.read_file_to_host("out", &dest).await, ErrorCode::InvalidArgument);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "fresh result\n", "{backend:?}: the host file is kept");
        let names: Vec<_> = std::fs::read_dir(host.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["report.txt"], "{backend:?}: no landing file is left next to it");
        sb.close().await.unwrap();
    }
}

/// A reader that yields some bytes, then fails (a network upload cut halfway).
struct FailsHalfway(bool);

impl tokio::io::AsyncRead for FailsHalfway {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.0 {
            return std::task::Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut")));
        }
        self.0 = true;
        buf.put_slice(b"the first half of the file");
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_writes_refuse_bad_input_and_a_failed_reader_writes_nothing() {
    for backend in backends().await {
        let sb = create(backend).await;
        sb.write_file("doc.txt", "v1").await.unwrap();

        expect_code(sb.write_file_from("doc.txt", FailsHalfway(false), 0o644).await, ErrorCode::IoError);
        assert_eq!(sb.read_file("doc.txt").await.unwrap(), b"v1", "{backend:?}: no half file replaced it");
        expect_code(sb.write_file_from("other.txt", FailsHalfway(false), 0o644).await, ErrorCode::IoError);
        assert!(!sb.exists("other.txt").await.unwrap(), "{backend:?}: no half file was made");

        expect_code(sb.write_file_from("doc.txt", &b"v2"[..], 0o10000).await, ErrorCode::InvalidArgument);
        expect_code(sb.write_file_from("/", &b"v2"[..], 0o644).await, ErrorCode::InvalidPath);
        let host = tempfile::tempdir().unwrap();
        expect_code(sb.write_file_from_host("doc.txt", host.path(), 0o644).await, ErrorCode::InvalidArgument);
        expect_code(sb.write_file_from_host("doc.txt", host.path().join("missing"), 0o644).await, ErrorCode::IoError);
        assert_eq!(sb.read_file("doc.txt").await.unwrap(), b"v1", "{backend:?}: every refusal kept the file");

        // No files at all is a no-op, not an error.
        sb.write_files(Vec::<(&str, &str)>::new()).await.unwrap();
        sb.close().await.unwrap();
        expect_code(sb.write_file_from("doc.txt", &b"v2"[..], 0o644).await, ErrorCode::Closed);
        expect_code(sb.refresh_from_host(host.path(), "x", RefreshOptions::default()).await, ErrorCode::Closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_loop_is_invalid_path_and_a_file_never_replaces_a_directory() {
    for backend in backends().await {
        let sb = create(backend).await;
        sb.exec("ln -s b loop-a && ln -s loop-a b && mkdir -p d/sub && echo x > d/sub/f", ExecOptions::new())
            .await
            .unwrap();
        let e = expect_code(sb.read_file("loop-a").await, ErrorCode::InvalidPath);
        assert!(e.to_string().contains("symbolic links"), "{backend:?}: {e}");
        expect_code(sb.exists("loop-a/child").await, ErrorCode::InvalidPath);
        // The loop is still a link like any other: seen, listed and deleted.
        assert!(sb.exists("loop-a").await.unwrap(), "{backend:?}");
        let listed = sb.list_directory(".").await.unwrap();
        assert!(listed.iter().any(|e| e.name == "loop-a" && e.kind == EntryKind::Symlink), "{backend:?}: {listed:?}");
        sb.delete_file("loop-a").await.unwrap();
        assert!(!sb.exists("loop-a").await.unwrap(), "{backend:?}: the loop is gone");
        expect_code(sb.read_file("b").await, ErrorCode::NotFound);

        let e = expect_code(sb.write_file("d", "flat").await, ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("directory"), "{backend:?}: {e}");
        assert_eq!(sb.read_file("d/sub/f").await.unwrap(), b"x\n", "{backend:?}: the directory is intact");
        sb.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_keeps_links_as_links() {
    for backend in backends().await {
        let sb = create(backend).await;
        sb.write_file("lib/real.txt", "real").await.unwrap();
        sb.exec("ln -s lib/real.txt alias && ln -s /nowhere dangling", ExecOptions::new()).await.unwrap();
        let fork = sb.fork().await.unwrap();
        let linked = fork.exec("readlink alias; readlink dangling; cat alias", ExecOptions::new()).await.unwrap();
        assert_eq!(linked.stdout, "lib/real.txt\n/nowhere\nreal", "{backend:?}: {linked:?}");
        // Still a link: changing the file through the fork's link changes the fork's file only.
        fork.exec("echo changed > alias", ExecOptions::new()).await.unwrap();
        assert_eq!(fork.read_file("lib/real.txt").await.unwrap(), b"changed\n", "{backend:?}");
        assert_eq!(sb.read_file("lib/real.txt").await.unwrap(), b"real", "{backend:?}: the parent is untouched");
        fork.close().await.unwrap();
        sb.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_too_large_to_list_is_too_large_and_a_subdirectory_still_lists() {
    // Local only: on a container backend the listing runs `stat` per entry, minutes for 100k.
    let sb = create(BackendChoice::Local).await;
    let n = LIST_MAX_ENTRIES + 1;
    let script = format!("mkdir -p big/sub && cd big && seq {n} | xargs touch && ls | wc -l");
    let made = sb.exec(&script, ExecOptions::new()).await.unwrap();
    assert_eq!(made.stdout.trim(), (n + 1).to_string());
    let e = expect_code(sb.list_directory("big").await, ErrorCode::TooLarge);
    assert!(e.to_string().contains("list a subdirectory"), "the message says what to do: {e}");
    assert_eq!(sb.list_directory("big/sub").await.unwrap(), vec![]);
    sb.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_the_container_refuses_says_why_and_keeps_the_file() {
    if !backends().await.contains(&BackendChoice::Docker) {
        return;
    }
    let sb = create(BackendChoice::Docker).await;
    // Docker bind-mounts /etc/hostname into the container: `rm` gets EBUSY for it.
    let before = sb.read_file("/etc/hostname").await.unwrap();
    let e = expect_code(sb.delete_file("/etc/hostname").await, ErrorCode::EngineError);
    // Through the agent or the Engine API's `rm`: the message names the path and the reason.
    assert!(e.to_string().contains("/etc/hostname"), "the message says what failed: {e}");
    assert!(e.to_string().to_lowercase().contains("busy"), "and carries the reason: {e}");
    assert_eq!(sb.read_file("/etc/hostname").await.unwrap(), before, "nothing was removed");
    sb.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_settings_and_imports_create_and_write_nothing() {
    use std::os::unix::ffi::OsStrExt;
    let local = || SandboxConfig::new().backend(BackendChoice::Local);
    for (cfg, says) in [
        (local().output_cap_bytes(63), "outputCapBytes must be at least 64"),
        (local().owner("two\nlines"), "owner must be a non-empty single line"),
        (local().owner(" "), "owner must be a non-empty single line"),
    ] {
        let e = expect_code(Sandbox::create(cfg).await, ErrorCode::InvalidArgument);
        assert!(e.to_string().contains(says), "{e}");
    }

    let sb = create(BackendChoice::Local).await;
    let e = expect_code(
        sb.serve("sleep 60", dagger_sandbox::ServeOptions::new().ready_timeout(std::time::Duration::ZERO)).await,
        ErrorCode::InvalidArgument,
    );
    assert!(e.to_string().contains("readyTimeout"), "{e}");

    // An import of a host file (not a directory), or of a tree with a name that is not UTF-8.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file.txt"), "x").unwrap();
    let e = expect_code(
        sb.refresh_from_host(host.path().join("file.txt"), "app", RefreshOptions::default()).await,
        ErrorCode::InvalidArgument,
    );
    assert!(e.to_string().contains("is not a directory"), "{e}");
    std::fs::write(host.path().join(std::ffi::OsStr::from_bytes(b"bad-\xff-name")), "x").unwrap();
    let e =
        expect_code(sb.refresh_from_host(host.path(), "app", RefreshOptions::default()).await, ErrorCode::InvalidPath);
    assert!(e.to_string().contains("UTF-8"), "{e}");
    assert!(!sb.exists("app").await.unwrap(), "a refused import writes nothing, not even its directory");
    sb.close().await.unwrap();
}

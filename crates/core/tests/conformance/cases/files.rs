//! Conformance cases for files: byte-exact round trips, bulk writes, listing, modes, missing and
//! restricted paths, bad input, import and export.

use std::time::Duration;

use dagger_sandbox::{EntryKind, ErrorCode, ExecOptions, FileWrite, RefreshOptions};

use crate::harness::{expect_code, Harness};

pub(super) async fn text_and_binary_files_round_trip_byte_exact(h: Harness) {
    let sb = h.create().await;
    let text = "héllo wörld ✓ 日本語 🚀\nline two\r\n";
    sb.write_file("unicode.txt", text).await.unwrap();
    assert_eq!(sb.read_to_string("unicode.txt").await.unwrap(), text);
    let binary: Vec<u8> = (0..=255u8).cycle().take(256 * 40 + 7).collect();
    sb.write_file("bin/all-bytes.bin", &binary).await.unwrap();
    assert_eq!(sb.read_file("bin/all-bytes.bin").await.unwrap(), binary);
    let r = sb.exec("wc -c < bin/all-bytes.bin", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), binary.len().to_string());
    // Bytes made inside the sandbox come out exact too.
    sb.exec("printf '\\000\\001\\377\\n\\200' > made.bin", ExecOptions::new()).await.unwrap();
    assert_eq!(sb.read_file("made.bin").await.unwrap(), [0u8, 1, 255, b'\n', 0x80]);
    expect_code(sb.read_to_string("made.bin").await, ErrorCode::InvalidArgument);
    // An empty file is a file.
    sb.write_file("empty", "").await.unwrap();
    assert_eq!(sb.read_file("empty").await.unwrap(), b"");
    sb.close().await.unwrap();
}

pub(super) async fn write_files_puts_1000_files_in_one_call(h: Harness) {
    let sb = h.create().await;
    let files: Vec<FileWrite> =
        (0..1000).map(|i| FileWrite::new(format!("many/d{}/f{i}.txt", i % 10), format!("file {i}\n"))).collect();
    sb.write_files(files).await.unwrap();
    let r = sb.exec("find many -type f | wc -l; cat many/d7/f997.txt", ExecOptions::new()).await.unwrap();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["1000", "file 997"], "{r:?}");
    assert_eq!(sb.list_directory("many").await.unwrap().len(), 10);
    sb.close().await.unwrap();
}

pub(super) async fn nested_dirs_and_list_directory_report_kinds(h: Harness) {
    let sb = h.create().await;
    sb.write_files([("a/b/c/d.txt", "four"), ("a/top.txt", "1"), ("a/with space.txt", "s")]).await.unwrap();
    sb.exec("ln -s top.txt a/link", ExecOptions::new()).await.unwrap();
    let list = sb.list_directory("a").await.unwrap();
    let got: Vec<(&str, EntryKind)> = list.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        got,
        [
            ("b", EntryKind::Dir),
            ("link", EntryKind::Symlink),
            ("top.txt", EntryKind::File),
            ("with space.txt", EntryKind::File)
        ]
    );
    let deep = sb.list_directory("a/b/c").await.unwrap();
    assert_eq!(deep.len(), 1);
    assert_eq!((deep[0].name.as_str(), deep[0].kind, deep[0].size), ("d.txt", EntryKind::File, 4));
    assert_eq!(sb.read_file("a/link").await.unwrap(), b"1", "reads follow symlinks inside the sandbox");
    expect_code(sb.list_directory("a/top.txt").await, ErrorCode::InvalidArgument);
    assert!(sb.exists("a/b/c").await.unwrap());
    sb.close().await.unwrap();
}

pub(super) async fn file_modes_are_applied(h: Harness) {
    let sb = h.create().await;
    sb.write_file_with_mode("run.sh", "#!/bin/sh\necho ran\n", 0o755).await.unwrap();
    let r = sb.exec("./run.sh", ExecOptions::new()).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
    sb.write_file("plain.sh", "echo x").await.unwrap();
    let r = sb.exec("test -x plain.sh", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 1, "default mode is 0644");
    // A number that is not a permission mode is refused, and nothing of the batch is written.
    let e = expect_code(
        sb.write_files([FileWrite::new("ok.txt", "x"), FileWrite::new("bad.txt", "x").mode(99_999_999)]).await,
        ErrorCode::InvalidArgument,
    );
    assert!(e.to_string().contains("0o7777"), "{e}");
    assert!(!sb.exists("ok.txt").await.unwrap() && !sb.exists("bad.txt").await.unwrap());
    sb.close().await.unwrap();
}

pub(super) async fn missing_paths_are_not_found(h: Harness) {
    let sb = h.create().await;
    let e = expect_code(sb.read_file("nope.txt").await, ErrorCode::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("/workspace/nope.txt") && msg.contains(sb.id()), "message names path and sandbox: {msg}");
    expect_code(sb.delete_file("nope.txt").await, ErrorCode::NotFound);
    expect_code(sb.list_directory("nope").await, ErrorCode::NotFound);
    expect_code(sb.exec("true", ExecOptions::new().cwd("nope")).await, ErrorCode::NotFound);
    expect_code(sb.export_directory("nope", std::env::temp_dir().join("dsbx-never")).await, ErrorCode::NotFound);
    assert!(!sb.exists("nope.txt").await.unwrap());
    sb.close().await.unwrap();
}

pub(super) async fn restricted_paths_refuse_writes_and_deletes_and_write_nothing(h: Harness) {
    let sb = h.create_with(h.config().restricted_path("/workspace/secrets/**").restricted_path("**/.git/**")).await;
    sb.exec("mkdir -p secrets && echo keep > secrets/key", ExecOptions::new()).await.unwrap();
    let e = expect_code(sb.write_file("secrets/key", "overwritten").await, ErrorCode::RestrictedPath);
    assert!(e.to_string().contains("/workspace/secrets/**"), "{e}");
    // One bad path refuses the whole batch: nothing of it lands.
    expect_code(sb.write_files([("ok.txt", "fine"), ("repo/.git/config", "x")]).await, ErrorCode::RestrictedPath);
    assert!(!sb.exists("ok.txt").await.unwrap(), "a refused batch must write nothing");
    expect_code(sb.delete_file("secrets/key").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("secrets").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("/workspace").await, ErrorCode::RestrictedPath);
    assert_eq!(sb.read_file("secrets/key").await.unwrap(), b"keep\n");
    sb.write_file("free.txt", "ok").await.unwrap();
    sb.close().await.unwrap();
}

pub(super) async fn bad_input_gets_a_clear_error_and_loses_nothing(h: Harness) {
    let sb = h.create().await;
    sb.write_file("keep.txt", "kept").await.unwrap();
    expect_code(sb.write_file("", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("a\0b", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("/", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.with_env("BAD=NAME", "x"), ErrorCode::InvalidArgument);
    expect_code(sb.with_envs([("OK", "1"), ("", "x")]), ErrorCode::InvalidArgument);
    assert!(!sb.env().contains_key("OK"), "an invalid batch sets nothing");
    expect_code(sb.exec("true", ExecOptions::new().env("A=B", "x")).await, ErrorCode::InvalidArgument);
    expect_code(sb.exec("true", ExecOptions::new().timeout(Duration::ZERO)).await, ErrorCode::InvalidArgument);
    expect_code(sb.set_workdir("keep.txt").await, ErrorCode::InvalidArgument);
    assert_eq!(sb.workdir(), "/workspace", "a refused set_workdir changes nothing");
    expect_code(sb.read_file("/workspace").await, ErrorCode::InvalidArgument);
    expect_code(sb.delete_file("/").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("keep.txt/child", "x").await, ErrorCode::InvalidArgument);
    let r = RefreshOptions::exclude(["[unclosed"]);
    expect_code(sb.refresh_from_host(std::env::temp_dir(), "x", r).await, ErrorCode::InvalidArgument);
    assert_eq!(sb.read_file("keep.txt").await.unwrap(), b"kept");
    sb.close().await.unwrap();
}

pub(super) async fn delete_file_removes_files_and_directories(h: Harness) {
    let sb = h.create().await;
    sb.write_files([("d/x/1.txt", "1"), ("d/2.txt", "2"), ("solo.txt", "s")]).await.unwrap();
    sb.delete_file("solo.txt").await.unwrap();
    assert!(!sb.exists("solo.txt").await.unwrap());
    sb.delete_file("d").await.unwrap();
    assert!(!sb.exists("d").await.unwrap());
    expect_code(sb.delete_file("d").await, ErrorCode::NotFound);
    sb.close().await.unwrap();
}

pub(super) async fn refresh_from_host_honours_excludes_and_export_copies_out(h: Harness) {
    let sb = h.create().await;
    let host = tempfile::tempdir().unwrap();
    let p = host.path();
    for (f, c) in [
        ("src/index.ts", "export {}"),
        ("package.json", "{}"),
        ("node_modules/dep/i.js", "x"),
        (".git/HEAD", "ref"),
        ("debug.log", "l"),
    ] {
        std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
        std::fs::write(p.join(f), c).unwrap();
    }
    sb.refresh_from_host(p, "app", RefreshOptions::exclude(["node_modules", ".git", "*.log"])).await.unwrap();
    let names: Vec<String> = sb.list_directory("app").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["package.json", "src"]);
    assert_eq!(sb.read_file("app/src/index.ts").await.unwrap(), b"export {}");
    // Refreshing again overwrites changed files.
    std::fs::write(p.join("package.json"), "{\"v\":2}").unwrap();
    sb.refresh_from_host(p, "app", RefreshOptions::exclude(["node_modules", ".git", "*.log"])).await.unwrap();
    assert_eq!(sb.read_file("app/package.json").await.unwrap(), b"{\"v\":2}");
    sb.exec(
        "mkdir -p app/dist/js && echo built > app/dist/js/out.js && printf '\\377' > app/dist/b.bin",
        ExecOptions::new(),
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    sb.export_directory("app/dist", out.path().join("dist")).await.unwrap();
    assert_eq!(std::fs::read(out.path().join("dist/js/out.js")).unwrap(), b"built\n");
    assert_eq!(std::fs::read(out.path().join("dist/b.bin")).unwrap(), [0xff]);
    expect_code(sb.export_directory("app/package.json", out.path()).await, ErrorCode::InvalidArgument);
    sb.close().await.unwrap();
}

pub(super) async fn writes_keep_the_mode_of_existing_directories(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkdir -p shared && chmod 1777 shared", ExecOptions::new()).await.unwrap();
    sb.write_file("shared/a/b.txt", "x").await.unwrap();
    sb.write_files([("shared/c.txt", "c")]).await.unwrap();
    let r = sb.exec("stat -c %a shared", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), "1777", "a write reset the mode of an existing directory");
    if h.is_container() {
        sb.write_file("/tmp/x.txt", "x").await.unwrap();
        let r = sb.exec("stat -c %a /tmp", ExecOptions::new()).await.unwrap();
        assert_eq!(r.stdout.trim(), "1777", "/tmp lost its sticky bit");
    }
    sb.close().await.unwrap();
}

pub(super) async fn fifos_and_directories_are_not_read_as_files(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkfifo pipe && mkdir -p d/e && ln -s d dirlink", ExecOptions::new()).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(20), sb.read_file("pipe")).await.expect("reading a FIFO hung");
    expect_code(read, ErrorCode::InvalidArgument);
    expect_code(sb.read_file("/").await, ErrorCode::InvalidArgument);
    expect_code(sb.read_file("dirlink").await, ErrorCode::InvalidArgument);
    sb.close().await.unwrap();
}

pub(super) async fn export_never_hands_the_host_a_setuid_file(h: Harness) {
    use std::os::unix::fs::PermissionsExt;
    let sb = h.create().await;
    sb.exec("mkdir -p out && echo x > out/tool && chmod 4755 out/tool", ExecOptions::new()).await.unwrap();
    let host = tempfile::tempdir().unwrap();
    sb.export_directory("out", host.path()).await.unwrap();
    let mode = std::fs::metadata(host.path().join("tool")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755, "mode {:o}", mode & 0o7777);
    sb.close().await.unwrap();
}

pub(super) async fn restricted_paths_cannot_be_reached_through_a_symlink(h: Harness) {
    let sb = h.create_with(h.config().restricted_path("/workspace/secrets/**")).await;
    sb.exec("mkdir secrets && ln -s secrets door && ln -s /workspace/secrets abs", ExecOptions::new()).await.unwrap();
    expect_code(sb.write_file("door/key", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_files([("ok.txt", "x"), ("abs/key", "x")]).await, ErrorCode::InvalidPath);
    expect_code(sb.delete_file("door/anything").await, ErrorCode::InvalidPath);
    assert!(!sb.exists("secrets/key").await.unwrap());
    assert!(!sb.exists("ok.txt").await.unwrap());
    sb.close().await.unwrap();
}

pub(super) async fn a_file_swapped_for_a_fifo_never_hangs_a_read(h: Harness) {
    // A command (here: the host, which is what a local sandbox's commands are) swaps a regular
    // file and a FIFO at one path while reads run; a read must never block on the FIFO.
    let sb = h.create().await;
    let dir = std::path::PathBuf::from(sb.resource_id());
    let target = dir.join("workspace/swap");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "regular").unwrap();
    let fifo = dir.join("workspace/.fifo");
    let file = dir.join("workspace/.file");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, target) = (stop.clone(), target.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&file, "regular").unwrap();
                std::fs::rename(&file, &target).unwrap();
                let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
                assert!(made.success());
                std::fs::rename(&fifo, &target).unwrap();
            }
        })
    };
    let mut outcomes = (0, 0);
    for _ in 0..20_000 {
        let r = tokio::time::timeout(Duration::from_secs(5), sb.read_file("swap")).await;
        match r.expect("a read blocked on a FIFO swapped in under it") {
            Ok(data) => {
                assert_eq!(data, b"regular");
                outcomes.0 += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
                outcomes.1 += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    println!("fifo swap: {} reads got the file, {} were refused as not regular", outcomes.0, outcomes.1);
    sb.close().await.unwrap();
}

pub(super) async fn relative_restrictions_and_protected_directories_hold(h: Harness) {
    // As users write them: relative to the workdir, and `X/**` meaning X too.
    let sb = h.create_with(h.config().restricted_path("secrets/**").restricted_path("**/.git/**")).await;
    sb.exec("mkdir -p secrets .git && echo s > secrets/old.txt && echo c > .git/config", ExecOptions::new())
        .await
        .unwrap();
    let e = expect_code(sb.write_file("secrets/key.txt", "k").await, ErrorCode::RestrictedPath);
    assert!(e.to_string().contains("secrets/**"), "{e}");
    expect_code(sb.delete_file("secrets").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("/workspace/.git").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("/workspace").await, ErrorCode::RestrictedPath);
    // Nothing was written or removed.
    assert!(!sb.exists("secrets/key.txt").await.unwrap());
    assert_eq!(sb.read_to_string("secrets/old.txt").await.unwrap(), "s\n");
    assert_eq!(sb.read_to_string(".git/config").await.unwrap(), "c\n");
    // Elsewhere all is allowed.
    sb.write_file("src/ok.txt", "fine").await.unwrap();
    sb.close().await.unwrap();
}

//! Local sandboxes (and local snapshots) live in per-user private directories: one that another
//! user pre-created open to all, or swapped for a symlink, is refused with a clear error, and
//! nothing is made in it; one that cannot be made is an `IO_ERROR` naming it; `$XDG_RUNTIME_DIR`
//! holds sandboxes by default. One test in this binary: it sets `DAGGER_SANDBOX_LOCAL_DIR` and
//! `DAGGER_SANDBOX_SNAPSHOT_DIR` for the whole process.

use std::os::unix::fs::PermissionsExt;

use dagger_sandbox::{BackendChoice, ErrorCode, Sandbox, SandboxConfig};

async fn create_in(dir: &std::path::Path) -> dagger_sandbox::Result<Sandbox> {
    std::env::set_var("DAGGER_SANDBOX_LOCAL_DIR", dir);
    Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await
}

#[tokio::test]
async fn a_shared_or_swapped_local_parent_is_refused() {
    let t = tempfile::tempdir().unwrap();

    // Pre-created world-writable, as another user could in /tmp.
    let open = t.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = create_in(&open).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("other users can write into it"), "{e}");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0, "nothing was made in it");

    // A symlink to a directory someone else controls.
    let theirs = t.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    let e = create_in(&link).await.unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0, "nothing was made behind the link");

    // Missing: made private, and the sandbox works.
    let fresh = t.path().join("fresh");
    let sb = create_in(&fresh).await.unwrap();
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
    let r = sb.exec("pwd; echo hi > f; cat f", dagger_sandbox::ExecOptions::new()).await.unwrap();
    assert!(r.stdout.ends_with("/workspace\nhi\n"), "{r:?}");

    // The snapshots directory is held to the same rules: a shared one is refused, nothing written.
    let snaps = t.path().join("snaps-open");
    std::fs::create_dir(&snaps).unwrap();
    std::fs::set_permissions(&snaps, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::env::set_var(dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV, &snaps);
    let e = sb.snapshot(Some("refused")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("the snapshots directory") && e.to_string().contains("other users"), "{e}");
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 0, "nothing was written in it");
    // Missing: made private (0700), the copy too.
    let fresh_snaps = t.path().join("snaps");
    std::env::set_var(dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV, &fresh_snaps);
    let snap = sb.snapshot(None).await.unwrap();
    assert_eq!(std::fs::metadata(&fresh_snaps).unwrap().permissions().mode() & 0o777, 0o700);
    let copy = std::path::Path::new(&snap.engine_ref);
    assert_eq!(std::fs::metadata(copy).unwrap().permissions().mode() & 0o777, 0o700, "{}", copy.display());
    dagger_sandbox::Snapshot::remove(&snap.id).await.unwrap();
    sb.close().await.unwrap();

    // In the way of a file: the parent cannot be made, an IO_ERROR that names it; nothing is made.
    let blocker = t.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let e = create_in(&blocker.join("sandboxes")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError, "{e}");
    assert!(e.to_string().contains(&blocker.join("sandboxes").display().to_string()), "the message names it: {e}");
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a directory", "the file is untouched");

    // Without DAGGER_SANDBOX_LOCAL_DIR, sandboxes go under $XDG_RUNTIME_DIR/dagger-sandbox.
    let run = t.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::env::remove_var("DAGGER_SANDBOX_LOCAL_DIR");
    std::env::set_var("XDG_RUNTIME_DIR", &run);
    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await.unwrap();
    assert!(sb.resource_id().starts_with(&run.join("dagger-sandbox").display().to_string()), "{}", sb.resource_id());
    sb.close().await.unwrap();
    assert_eq!(std::fs::read_dir(run.join("dagger-sandbox")).unwrap().count(), 0, "close removed its directory");
}

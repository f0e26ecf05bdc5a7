//! Snapshots have no owning process: a program that takes one and dies leaves a snapshot that the
//! orphan sweep must keep (its sandbox goes), and that still restores afterwards.

use std::process::Command;

use dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV;
use dagger_sandbox::{cleanup_orphans, BackendChoice, ExecOptions, Sandbox, SandboxConfig, Snapshot};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";

/// Run in a child process by the test below: a sandbox with a file, a snapshot of it, and an exit
/// without closing anything, the way a crashed program would.
#[tokio::test]
#[ignore = "helper: run as a child process by a_snapshot_survives_the_orphan_sweep"]
async fn snapshot_child_helper() {
    let backend: BackendChoice = std::env::var("DSBX_SNAP_BACKEND").unwrap().parse().unwrap();
    let cfg = SandboxConfig::new().backend(backend);
    let cfg = if backend == BackendChoice::Docker { cfg.image(IMAGE) } else { cfg };
    let sb = Sandbox::create(cfg).await.unwrap();
    sb.write_file("keep.txt", "from a dead process").await.unwrap();
    let snap = sb.snapshot(None).await.unwrap();
    println!("SNAP {} {}", snap.id, sb.resource_id());
    std::process::exit(0);
}

fn snapshot_in_child(backend: &str, dir: &std::path::Path) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "snapshot_child_helper", "--nocapture"])
        .env("DSBX_SNAP_BACKEND", backend)
        .env(SNAPSHOT_DIR_ENV, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("SNAP "))
        .unwrap_or_else(|| panic!("child printed no snapshot: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let mut it = line.split_whitespace().skip(1).map(String::from);
    (it.next().unwrap(), it.next().unwrap())
}

/// Deletes the test's snapshots when dropped, so a failing run leaves none behind on the engine.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut self.0);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                for id in ids {
                    let _ = Snapshot::remove(&id).await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_survives_the_orphan_sweep() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(SNAPSHOT_DIR_ENV, dir.path());
    let mut backends = vec![("local", BackendChoice::Local)];
    if dagger_sandbox::engines::docker_available().await.is_ok() {
        backends.push(("docker", BackendChoice::Docker));
    } else if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but no Docker engine answers");
    } else {
        println!("SKIPPED: docker half of the snapshot sweep test: no Docker engine here");
    }
    let made: Vec<_> = backends.iter().map(|(name, b)| (*b, snapshot_in_child(name, dir.path()))).collect();
    let _cleanup = Cleanup(made.iter().map(|(_, (id, _))| id.clone()).collect());

    let report = cleanup_orphans().await.unwrap();
    println!("cleanup_orphans: {report:?}");
    for (backend, (snap, resource)) in &made {
        if *backend == BackendChoice::Local {
            assert!(!std::path::Path::new(resource).exists(), "the dead child's sandbox is removed");
        }
        let found = Snapshot::inspect(snap).await.unwrap_or_else(|e| panic!("{backend:?}: the sweep took {snap}: {e}"));
        let sb = Sandbox::from_snapshot(&found.id, SandboxConfig::new().backend(*backend)).await.unwrap();
        let r = sb.exec("cat keep.txt", ExecOptions::new()).await.unwrap();
        assert_eq!(r.stdout, "from a dead process");
        sb.close().await.unwrap();
        Snapshot::remove(snap).await.unwrap();
    }
    let left = Snapshot::list().await.unwrap();
    assert!(!left.iter().any(|s| made.iter().any(|(_, (id, _))| *id == s.id)), "{left:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left in the snapshots directory");
}

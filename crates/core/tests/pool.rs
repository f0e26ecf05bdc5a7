//! The warm pool on the real Docker engine: sandboxes are ready before they are asked for, each is
//! handed out once, the pool refills, and shutdown removes what it still holds.

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, ErrorCode, ExecOptions, Pool, SandboxConfig};

const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn wait_ready(pool: &Pool, n: usize) {
    let until = Instant::now() + Duration::from_secs(60);
    while pool.ready() < n {
        assert!(Instant::now() < until, "the pool did not fill to {n} within 60 s ({} ready)", pool.ready());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn container_of(id: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=dev.dagger-sandbox.sandbox={id}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_pool_hands_out_fresh_sandboxes_once_refills_and_removes_the_rest_on_shutdown() {
    runtime().block_on(async {
        if dagger_sandbox::engines::docker_available().await.is_err() {
            assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "no Docker engine");
            println!("SKIPPED: no Docker engine answers");
            return;
        }
        let cfg = SandboxConfig::new().backend(BackendChoice::Docker).image(BUSYBOX);
        let pool = Pool::start(cfg, 2).unwrap();
        wait_ready(&pool, 2).await;
        let a = pool.try_take().expect("a ready sandbox");
        let b = pool.take().await.unwrap();
        assert_ne!(a.id(), b.id());
        // Each works, and what one writes the other never sees (nothing is shared or reused).
        a.write_file("mine.txt", "a").await.unwrap();
        let r = b.exec("test -e mine.txt && echo seen || echo fresh", ExecOptions::new()).await.unwrap();
        assert_eq!(r.stdout.trim(), "fresh");
        // The pool refills behind the two it handed out.
        wait_ready(&pool, 2).await;
        let (ida, idb) = (a.id().to_string(), b.id().to_string());
        a.close().await.unwrap();
        b.close().await.unwrap();
        let c = pool.try_take().unwrap();
        assert!(c.id() != ida && c.id() != idb, "a closed sandbox is never handed out again");
        c.close().await.unwrap();
        // Shutdown removes every sandbox the pool still held.
        wait_ready(&pool, 2).await;
        let held = pool.ready_ids();
        for id in &held {
            assert_eq!(container_of(id), 1, "{id} runs");
        }
        pool.shutdown().await;
        assert_eq!(pool.ready(), 0);
        for id in &held {
            assert_eq!(container_of(id), 0, "{id} was removed on shutdown");
        }
    });
}

#[test]
fn a_pool_of_a_bad_config_or_no_size_is_refused_at_once() {
    runtime().block_on(async {
        let err = Pool::start(SandboxConfig::new().workdir("relative"), 1).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        let err = Pool::start(SandboxConfig::new().backend(BackendChoice::Local), 0).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    });
}

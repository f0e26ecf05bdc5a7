//! A pool whose sandboxes cannot be made keeps retrying (backing off) and fills once they can;
//! meanwhile `take` answers with the create's own typed error instead of waiting. One test: it
//! sets `DAGGER_SANDBOX_LOCAL_DIR` for the whole process.

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, ErrorCode, ExecOptions, Pool, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_cannot_create_yet_answers_take_with_the_error_and_fills_later() {
    let t = tempfile::tempdir().unwrap();
    let blocker = t.path().join("a-file");
    std::fs::write(&blocker, "in the way").unwrap();
    std::env::set_var("DAGGER_SANDBOX_LOCAL_DIR", blocker.join("sandboxes"));

    let pool = Pool::start(SandboxConfig::new().backend(BackendChoice::Local), 1).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.ready(), 0);
    let started = Instant::now();
    let e = pool.take().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "take does not wait for the pool");

    // The cause goes away: the pool fills on its next retry.
    std::env::set_var("DAGGER_SANDBOX_LOCAL_DIR", t.path().join("sandboxes"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.ready() == 0 {
        assert!(Instant::now() < deadline, "the pool never filled after the cause was fixed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sb = pool.take().await.unwrap();
    assert_eq!(sb.exec("echo pooled", ExecOptions::new()).await.unwrap().stdout, "pooled\n");
    sb.close().await.unwrap();
    pool.shutdown().await;
    std::env::remove_var("DAGGER_SANDBOX_LOCAL_DIR");
}

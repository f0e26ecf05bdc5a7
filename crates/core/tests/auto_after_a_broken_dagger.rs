//! `auto` on a machine whose Dagger engine is in sight but broken (here: a session in the
//! environment that nothing serves): the sandbox still comes up, on Docker, and says why it is
//! not on Dagger; with ports, which Dagger cannot publish, `auto` does not try Dagger at all. One
//! test, because it sets process-wide environment variables.

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, BackendKind, ExecOptions, Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_moves_on_to_docker_with_a_note_when_dagger_is_in_sight_but_fails() {
    if let Err(why) = dagger_sandbox::engines::docker_available().await {
        assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "no Docker engine: {why}");
        println!("SKIPPED: no Docker engine here ({why})");
        return;
    }
    // Port 1 on loopback: nothing listens, so the session's probe is refused at once.
    std::env::set_var("DAGGER_SESSION_PORT", "1");
    std::env::set_var("DAGGER_SESSION_TOKEN", "not-a-session");
    assert!(dagger_sandbox::engines::dagger_plausible().is_ok(), "a session in the env makes auto try Dagger");

    let cfg = SandboxConfig::new()
        .backend(BackendChoice::Auto)
        .image("dagger-sandbox-test/busybox:latest")
        .dagger_connect_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let sb = Sandbox::create(cfg.clone()).await.unwrap();
    println!("auto got past a dead Dagger session in {} ms", started.elapsed().as_millis());
    assert_eq!(sb.backend(), BackendKind::Docker);
    let note = sb.fallback_reason().expect("a Dagger engine that was there and failed is worth a note");
    assert!(note.contains("DAGGER_SESSION_PORT=1"), "the note says which engine failed: {note}");
    assert!(note.contains(&format!("sandbox {} runs on the docker backend instead", sb.id())), "{note}");
    assert!(!note.contains("LOCAL"), "Docker is still a container: no local warning: {note}");
    assert_eq!(sb.exec("echo ok", ExecOptions::new()).await.unwrap().stdout, "ok\n");
    sb.close().await.unwrap();

    // Ports: Dagger cannot publish them, so auto goes to Docker without trying it (no note).
    let sb = Sandbox::create(cfg.port(8080)).await.unwrap();
    assert_eq!(sb.backend(), BackendKind::Docker);
    assert_eq!(sb.fallback_reason(), None, "skipping Dagger for ports is not a failure");
    assert_eq!(sb.ports().len(), 1);
    sb.close().await.unwrap();

    std::env::remove_var("DAGGER_SESSION_PORT");
    std::env::remove_var("DAGGER_SESSION_TOKEN");
}

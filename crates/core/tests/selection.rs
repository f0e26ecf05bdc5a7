//! Backend selection: `auto` lands on the strongest engine that answers, falls back loudly and in
//! bounded time when none does, and `fallback: false` or an explicit backend turns a missing engine
//! into `ENGINE_UNAVAILABLE`. One test, because it points DOCKER_HOST at nothing for a while and the
//! environment is process-wide.

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, BackendKind, ErrorCode, ExecOptions, Isolation, Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_selection_fallback_and_engine_unavailable() {
    let docker_here = dagger_sandbox::engines::docker_available().await.is_ok();
    if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
        assert!(docker_here, "DAGGER_SANDBOX_REQUIRE_DOCKER=1 but no Docker engine answers");
    }
    if docker_here {
        let sb = Sandbox::create(SandboxConfig::new().image("dagger-sandbox-test/busybox:latest")).await.unwrap();
        assert_eq!((sb.backend(), sb.isolation()), (BackendKind::Docker, Isolation::Container));
        assert!(sb.fallback_reason().is_none());
        sb.close().await.unwrap();
    } else {
        println!("SKIPPED: auto-selects-docker half of this test: no Docker engine here");
    }

    // No engine anywhere: a socket path that does not exist, and one nobody listens on.
    let dead = tempfile::tempdir().unwrap();
    let listening_nowhere = dead.path().join("docker.sock");
    std::os::unix::net::UnixListener::bind(&listening_nowhere).map(drop).unwrap();
    for host in
        [format!("unix://{}/missing.sock", dead.path().display()), format!("unix://{}", listening_nowhere.display())]
    {
        std::env::set_var("DOCKER_HOST", &host);

        let t = Instant::now();
        let sb = Sandbox::create(SandboxConfig::new()).await.unwrap();
        let took = t.elapsed();
        assert_eq!((sb.backend(), sb.isolation()), (BackendKind::Local, Isolation::Process), "{host}");
        let why = sb.fallback_reason().expect("a fallback says why");
        assert!(why.contains("docker") && why.contains("LOCAL"), "{why}");
        println!("auto fell back to local in {} ms ({host})", took.as_millis());
        assert!(took < Duration::from_secs(2), "the probe is bounded: took {took:?}");
        assert_eq!(sb.exec("echo works", ExecOptions::new()).await.unwrap().stdout, "works\n");
        sb.close().await.unwrap();

        let e = Sandbox::create(SandboxConfig::new().fallback(false)).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::EngineUnavailable, "{e}");
        assert!(e.to_string().contains("docker"), "the message says what was tried: {e}");

        let e = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Docker)).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::EngineUnavailable, "{e}");
        assert!(e.to_string().contains("Start the Docker daemon"), "the message says how to fix it: {e}");
    }
    std::env::remove_var("DOCKER_HOST");

    let t = Instant::now();
    let e = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Dagger)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineUnavailable, "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn config_from_a_json_file_creates_a_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sandbox.json");
    std::fs::write(&file, r#"{"backend":"local","workdir":"/app","env":{"MODE":"json"},"timeoutMs":5000}"#).unwrap();
    let sb = Sandbox::create(SandboxConfig::from_json_file(&file).unwrap()).await.unwrap();
    assert_eq!(sb.workdir(), "/app");
    assert_eq!(sb.default_timeout(), Duration::from_secs(5));
    assert_eq!(sb.exec("echo $MODE", ExecOptions::new()).await.unwrap().stdout, "json\n");
    sb.close().await.unwrap();

    std::fs::write(&file, r#"{"backend":"podman"}"#).unwrap();
    let e = SandboxConfig::from_json_file(&file).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("sandbox.json"), "the message names the file: {e}");
    let e = SandboxConfig::from_json_file(dir.path().join("missing.json")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError);
}

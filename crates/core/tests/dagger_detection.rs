//! On a machine with no Dagger engine: `backend: "dagger"` fails fast and clearly with
//! `ENGINE_UNAVAILABLE`, and `auto` moves on to Docker (or local) within the bound the issue sets.
//! Where an engine IS reachable (a session, or a dagger CLI), these checks do not apply and say so.

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, BackendKind, ErrorCode, Sandbox, SandboxConfig};

/// Whether this machine offers any way to a Dagger engine that detection would try.
fn dagger_reachable_here() -> Option<String> {
    if std::env::var_os("DAGGER_SESSION_PORT").is_some() {
        return Some("DAGGER_SESSION_PORT is set".into());
    }
    if std::env::var_os("_EXPERIMENTAL_DAGGER_CLI_BIN").is_some() {
        return Some("_EXPERIMENTAL_DAGGER_CLI_BIN is set".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("dagger"))
        .find(|p| p.is_file())
        .map(|p| format!("{} exists", p.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn dagger_without_an_engine_is_engine_unavailable_and_says_what_was_tried() {
    if let Some(why) = dagger_reachable_here() {
        println!("SKIPPED: a Dagger engine may be reachable here ({why})");
        return;
    }
    runtime().block_on(async {
        // The connect bound keeps even a blackholed download short; the outer timeout only
        // turns a hang into a failure instead of a stuck test run.
        let cfg = SandboxConfig::new()
            .backend(BackendChoice::Dagger)
            .fallback(false)
            .dagger_connect_timeout(Duration::from_secs(10));
        let r = tokio::time::timeout(Duration::from_secs(60), Sandbox::create(cfg)).await.expect("create hung");
        let e = r.expect_err("no engine here, yet a dagger sandbox was created");
        assert_eq!(e.code(), ErrorCode::EngineUnavailable, "{e}");
        let msg = e.to_string();
        for needle in ["DAGGER_SESSION_PORT", "_EXPERIMENTAL_DAGGER_CLI_BIN", "PATH", "docs.dagger.io/install"] {
            assert!(msg.contains(needle), "the message should mention {needle}: {msg}");
        }
        let ports = SandboxConfig::new().backend(BackendChoice::Dagger).port(8080);
        assert_eq!(Sandbox::create(ports).await.unwrap_err().code(), ErrorCode::InvalidArgument);
    });
}

#[test]
fn auto_without_dagger_lands_on_docker_or_local_within_two_seconds() {
    if let Some(why) = dagger_reachable_here() {
        println!("SKIPPED: a Dagger engine may be reachable here ({why})");
        return;
    }
    runtime().block_on(async {
        let docker_up = dagger_sandbox::engines::docker_available().await.is_ok();
        // The image only matters when Docker is up: a local test image, so nothing is pulled.
        let cfg = SandboxConfig::new().backend(BackendChoice::Auto).image("dagger-sandbox-test/busybox:latest");
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(60), Sandbox::create(cfg)).await.expect("create hung");
        let took = started.elapsed();
        let sb = match r {
            Ok(sb) => sb,
            // Docker is up but the test image is missing: auto still got past Dagger and chose Docker.
            Err(e) if docker_up => {
                println!("auto chose docker, whose create failed ({e}); the probe took {took:?}");
                assert_ne!(e.code(), ErrorCode::EngineUnavailable, "{e}");
                assert!(took < Duration::from_secs(2), "auto took {took:?} to get past the Dagger probe");
                return;
            }
            Err(e) => panic!("auto must fall back to local: {e}"),
        };
        let expected = if docker_up { BackendKind::Docker } else { BackendKind::Local };
        assert_eq!(sb.backend(), expected);
        // The bound the issue sets for the probe with no Dagger engine (the create itself included).
        assert!(took < Duration::from_secs(2), "auto took {took:?}");
        assert!(sb.fallback_reason().is_none() || expected == BackendKind::Local, "{:?}", sb.fallback_reason());
        sb.close().await.unwrap();
    });
}

#[test]
fn dagger_config_keys_are_read_from_json_and_checked() {
    let c = SandboxConfig::from_json_str(
        r#"{"backend":"dagger","cacheExecs":true,"secretPatterns":["OPENAI_*"],"daggerConnectTimeoutMs":5000}"#,
    )
    .unwrap();
    assert!(c.cache_execs);
    assert_eq!(c.secret_patterns.as_deref(), Some(&["OPENAI_*".to_string()][..]));
    runtime().block_on(async {
        for bad in
            [r#"{"backend":"dagger","secretPatterns":["["]}"#, r#"{"backend":"dagger","daggerConnectTimeoutMs":0}"#]
        {
            let cfg = SandboxConfig::from_json_str(bad).unwrap();
            let e = Sandbox::create(cfg).await.unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}: {e}");
        }
    });
}

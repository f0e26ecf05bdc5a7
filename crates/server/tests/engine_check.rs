//! The daemon's periodic engine check: a session whose resource was removed behind its back (here
//! a local sandbox's directory; a container's exit is also seen through the engine's events) is
//! ended as `engine_stopped`, so clients get `SESSION_ENDED` instead of odd failures; healthy
//! sessions are left alone.

mod common;

use std::time::Duration;

use common::*;
use dagger_sandbox_server::reaper::check_engine_once;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_ends_sessions_whose_resource_vanished_and_keeps_the_rest() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), Duration::from_secs(300)).await;
    let healthy = d.create(json!({})).await;
    let (status, local) = d.call(Method::POST, "/api/sandbox", Some(json!({"backend": "local"}))).await;
    assert_eq!(status, 201, "{local}");
    let (local_id, healthy_id) = (local["id"].as_str().unwrap(), healthy["id"].as_str().unwrap());
    assert_eq!(check_engine_once(d.server.sessions()).await, (0, 0), "nothing to end yet");

    // The local sandbox's directory goes away behind the daemon's back.
    let root = d.server.sessions().live(local_id).unwrap().sandbox.resource_id();
    std::fs::remove_dir_all(std::path::Path::new(&root).parent().unwrap()).unwrap();
    assert_eq!(check_engine_once(d.server.sessions()).await, (0, 1));
    let (_, s) = d.call(Method::GET, &format!("/api/sandbox/{local_id}"), None).await;
    assert_eq!((s["status"].as_str(), s["endedReason"].as_str()), (Some("terminated"), Some("engine_stopped")), "{s}");
    let (status, v) =
        d.call(Method::POST, &format!("/api/sandbox/{local_id}/exec"), Some(json!({"command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{v}");

    let (_, s) = d.call(Method::GET, &format!("/api/sandbox/{healthy_id}"), None).await;
    assert_eq!(s["status"], "active", "the healthy session is untouched: {s}");
    let (status, v) =
        d.call(Method::POST, &format!("/api/sandbox/{healthy_id}/exec"), Some(json!({"command": "echo ok"}))).await;
    assert_eq!((status, v["stdout"].as_str()), (200, Some("ok\n")), "{v}");
    d.server.shutdown().await;
}

//! What a client gets from a session after it ended: its log stays readable (with the reason it
//! ended), and exec or extend are `SESSION_ENDED` (409); a create the daemon refuses makes nothing.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_keeps_its_log_and_refuses_exec_and_extend() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), Duration::from_secs(300)).await;

    let (status, v) =
        d.call(Method::POST, "/api/sandbox", Some(json!({"backend": "local", "ports": [0], "command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("ports must be 1-65535"), "{v}");
    let (_, all) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
    assert_eq!(all["sandboxes"], json!([]), "a refused create makes no session");

    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let (status, _) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "echo before-the-end"}))).await;
    assert_eq!(status, 200);
    let (status, v) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200, "{v}");

    let log = d.req(Method::GET, &format!("/api/sandbox/{id}/logs")).send().await.unwrap().text().await.unwrap();
    assert!(log.contains("before-the-end"), "the output is still readable after the end: {log}");
    assert!(log.contains("session ended: stopped"), "and says why it ended: {log}");

    let (status, v) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/extend"), Some(json!({"ttlSeconds": 600}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{v}");
    let (status, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{v}");
    assert!(!container_exists(s["containerId"].as_str().unwrap()).await, "its container is gone");
    d.server.shutdown().await;
}

//! What a session leaves behind: no secret in the registry file, nothing running after a client
//! that gave up on its create, on Docker and on the local backend.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);

const SECRET: &str = "ghp_not-a-real-token-8d1f6c0b2a";

/// Every byte the registry has on disk (database, WAL and shared-memory files).
fn registry_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["sessions.db", "sessions.db-wal", "sessions.db-shm"] {
        all.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_values_never_reach_the_registry_file_and_survive_a_restart() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({"env": {"GITHUB_TOKEN": SECRET}})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let exec = format!("/api/sandbox/{id}/exec");
    let echo = json!({"command": "printf %s \"$GITHUB_TOKEN\""});
    let (status, out) = d.call(Method::POST, &exec, Some(echo.clone())).await;
    assert_eq!((status, out["stdout"].as_str()), (200, Some(SECRET)), "{out}");
    assert!(!holds(&registry_bytes(dir.path()), SECRET), "the registry file holds the env value");

    d.server.crash();
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.reattached, 1);
    let (status, out) = d.call(Method::POST, &exec, Some(echo)).await;
    assert_eq!((status, out["stdout"].as_str()), (200, Some(SECRET)), "the value is back after a restart: {out}");
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200);
    d.server.shutdown().await;
    assert!(!holds(&registry_bytes(dir.path()), SECRET), "the registry file holds the env value after the end");
}

/// Sends a create and gives up after one second, like a client that disconnects.
async fn create_and_give_up(d: &Daemon, body: Value) {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .post(d.url("/api/sandbox"))
        .bearer_auth(&d.server.token)
        .json(&body)
        .send()
        .await;
    assert!(r.is_err(), "the create answered within 1 s; the test needs a slower service: {r:?}");
}

/// The only session of the daemon, once it has ended (`None` if it does not end within 60 s).
async fn ended_session(d: &Daemon) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let (_, list) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
        let all = list["sandboxes"].as_array().cloned().unwrap_or_default();
        if let [s] = all.as_slice() {
            if s["status"] == "terminated" {
                return Some(s.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_whose_client_leaves_leaks_no_container() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let cmd = "sleep 3; mkdir -p /www && exec httpd -f -p 8080 -h /www";
    create_and_give_up(&d, json!({"image": BUSYBOX, "backend": "docker", "ports": [8080], "command": cmd})).await;
    let s = ended_session(&d).await;
    assert_eq!(s.as_ref().and_then(|s| s["endedReason"].as_str()), Some("abandoned"), "{s:?}");
    assert!(containers_of(&d.owner()).await.is_empty(), "no container outlives the abandoned create");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_create_whose_client_leaves_leaks_no_directory_or_process() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cmd = format!("sleep 3; exec python3 -m http.server {port} --bind 127.0.0.1");
    create_and_give_up(&d, json!({"backend": "local", "ports": [port], "command": cmd})).await;
    let s = ended_session(&d).await.expect("the abandoned session is recorded and ended");
    assert_eq!(s["endedReason"], "abandoned", "{s}");
    let root = s["containerId"].as_str().unwrap();
    assert!(!std::path::Path::new(root).exists(), "the sandbox directory {root} is removed");
    assert!(!dagger_sandbox::engines::serves_on_loopback(port).await, "the service process is gone");
    d.server.shutdown().await;
}

//! Stopping a session's sandbox and keeping it (`POST .../stop`), across a daemon restart, and
//! resuming it (`POST .../resume`, or the next call after an idle stop), on docker and local.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);

async fn running(container: &str) -> bool {
    let info = docker().inspect_container(container, None).await.unwrap();
    info.state.and_then(|s| s.running).unwrap_or(false)
}

async fn exec(d: &Daemon, id: &str, command: &str) -> (u16, Value) {
    d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": command}))).await
}

/// Create, write, stop, restart the daemon, resume: the files and env are there.
async fn stop_restart_resume(create: Value) {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let (status, s) = d.call(Method::POST, "/api/sandbox", Some(create)).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    let backend = s["backend"].as_str().unwrap().to_string();
    let resource = s["containerId"].as_str().unwrap().to_string();
    let (st, r) = exec(&d, &id, "echo kept-content > kept.txt && sleep 1000 > /dev/null 2>&1 & echo started").await;
    assert_eq!((st, r["exitCode"].as_i64()), (200, Some(0)), "{r}");

    let (st, stopped) = d.call(Method::POST, &format!("/api/sandbox/{id}/stop"), None).await;
    assert_eq!(st, 200, "{stopped}");
    assert_eq!((stopped["status"].as_str(), stopped["stoppedBy"].as_str()), (Some("stopped"), Some("user")));
    if backend == "docker" {
        assert!(!running(&resource).await, "the container is stopped, not removed");
    } else {
        let workdir = s["workingDirectory"].as_str().unwrap().trim_start_matches('/');
        assert!(std::path::Path::new(&resource).join(workdir).join("kept.txt").is_file(), "the directory is kept");
    }
    let (st, e) = exec(&d, &id, "true").await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("STOPPED")), "{e}");
    // Stopping again changes nothing.
    let (st, again) = d.call(Method::POST, &format!("/api/sandbox/{id}/stop"), None).await;
    assert_eq!((st, again["status"].as_str()), (200, Some("stopped")));

    // A clean restart, then a crash-like one: the stopped session is neither lost nor an orphan.
    d.server.shutdown().await;
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!((d.server.reconciled.lost, d.server.reconciled.orphan_containers), (0, 0), "{:?}", d.server.reconciled);
    assert_eq!(d.server.reconciled.orphan_directories, 0);
    d.server.crash();
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.lost, 0, "{:?}", d.server.reconciled);
    let (_, got) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((got["status"].as_str(), got["stoppedBy"].as_str()), (Some("stopped"), Some("user")), "{got}");
    let (st, e) = exec(&d, &id, "true").await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("STOPPED")), "still stopped after the restart: {e}");

    let (st, resumed) = d.call(Method::POST, &format!("/api/sandbox/{id}/resume"), None).await;
    assert_eq!(st, 200, "{resumed}");
    assert_eq!((resumed["status"].as_str(), resumed["stoppedBy"].as_str()), (Some("active"), None));
    let (st, r) =
        exec(&d, &id, "cat kept.txt; echo \"$KEPT_ENV\"; ps -o args 2>/dev/null | grep -c '^sleep 1000' || true").await;
    assert_eq!(st, 200, "{r}");
    let out = r["stdout"].as_str().unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("kept-content"), "{r}");
    if backend == "docker" {
        // The container keeps the create env; a local directory does not (documented).
        assert_eq!(lines.next(), Some("env-value"), "{r}");
        assert_eq!(lines.next(), Some("0"), "the stop ended the background process: {r}");
    }
    let (st, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(st, 200);
    if backend == "docker" {
        assert!(!container_exists(&resource).await, "DELETE removes a resumed sandbox");
    } else {
        assert!(!std::path::Path::new(&resource).exists());
    }
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_docker_session_survives_daemon_restarts_and_resumes_with_its_files_and_env() {
    stop_restart_resume(json!({"image": BUSYBOX, "backend": "docker", "env": {"KEPT_ENV": "env-value"}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_local_session_survives_daemon_restarts_and_resumes_with_its_files() {
    stop_restart_resume(json!({"backend": "local", "env": {"KEPT_ENV": "env-value"}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_session_is_stopped_and_the_next_call_resumes_it() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start_with(dir.path(), |o| {
        o.reap_interval = REAP;
        o.idle_stop = Some(Duration::from_secs(2));
    })
    .await;
    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let container = s["containerId"].as_str().unwrap().to_string();
    let (_, r) = exec(&d, &id, "echo before > f.txt").await;
    assert_eq!(r["exitCode"], 0, "{r}");
    // A call longer than the idle timeout is not idleness.
    let (_, r) = exec(&d, &id, "sleep 4; echo long").await;
    assert_eq!(r["stdout"], "long\n", "{r}");
    let stopped = eventually(Duration::from_secs(20), || async {
        let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
        v["status"] == "stopped"
    })
    .await;
    assert!(stopped, "the idle session was stopped");
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(v["stoppedBy"], "idle", "{v}");
    assert!(!running(&container).await);
    // The next call resumes it transparently.
    let (st, r) = exec(&d, &id, "cat f.txt").await;
    assert_eq!((st, r["stdout"].as_str()), (200, Some("before\n")), "{r}");
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["stoppedBy"].as_str()), (Some("active"), None), "{v}");
    assert!(running(&container).await);
    // The TTL still deletes a stopped session.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
            v["status"] == "stopped"
        })
        .await
    );
    let (st, _) = d.call(Method::POST, &format!("/api/sandbox/{id}/extend"), Some(json!({"ttlSeconds": 1}))).await;
    assert_eq!(st, 200);
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_service_session_starts_its_service_again_on_resume() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let cmd = "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www";
    let s = d.create(json!({"command": cmd, "ports": [8080]})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let (st, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/stop"), None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("stopped")), "{v}");
    // The service ending with the stop does not end the session as failed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(v["status"], "stopped", "{v}");
    let (st, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/resume"), None).await;
    assert_eq!(st, 200, "{v}");
    let url = v["hostUrl"].as_str().unwrap().to_string();
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert_eq!(body, "served\n");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connected_handle_keeps_its_session_from_the_idle_timeout_and_stops_it_through_the_daemon() {
    use dagger_sandbox::{ErrorCode, ExecOptions, SandboxConfig};
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start_with(dir.path(), |o| {
        o.reap_interval = REAP;
        o.idle_stop = Some(Duration::from_secs(2));
    })
    .await;
    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let state = d.server.state_dir.clone();
    let sb = dagger_sandbox_daemon_client::connect(Some(&state), &id, SandboxConfig::new()).await.unwrap();
    assert!(sb.is_connected());
    // A call through the handle that outlasts the idle timeout: the daemon does not see it, but
    // the handle tells it the sandbox is in use.
    let r = sb.exec("sleep 5; echo still-running", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "still-running\n", "{r:?}");
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(v["status"], "active", "{v}");

    // Stop and resume through the handle go to the daemon, which records them.
    sb.stop().await.unwrap();
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["stoppedBy"].as_str()), (Some("stopped"), Some("user")), "{v}");
    let e = sb.exec("true", ExecOptions::new()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Stopped);
    // Another process connecting meanwhile gets a stopped handle, which it may resume.
    let other = dagger_sandbox_daemon_client::connect(Some(&state), &id, SandboxConfig::new()).await.unwrap();
    assert!(other.is_stopped());
    assert_eq!(other.exec("true", ExecOptions::new()).await.unwrap_err().code(), ErrorCode::Stopped);
    other.resume().await.unwrap();
    assert_eq!(other.exec("echo other", ExecOptions::new()).await.unwrap().stdout, "other\n");
    other.close().await.unwrap();
    // The first handle still thinks it is stopped; its resume is a no-op at the daemon.
    sb.resume().await.unwrap();
    assert_eq!(sb.exec("echo back", ExecOptions::new()).await.unwrap().stdout, "back\n");

    // Left alone, it is stopped for being idle; the handle's next call resumes it.
    let stopped = eventually(Duration::from_secs(20), || async {
        let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
        v["stoppedBy"] == "idle"
    })
    .await;
    assert!(stopped);
    assert_eq!(sb.exec("echo resumed", ExecOptions::new()).await.unwrap().stdout, "resumed\n");
    // Closing the handle leaves the session; delete ends it.
    sb.close().await.unwrap();
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(v["status"], "active", "{v}");
    let again = dagger_sandbox_daemon_client::connect(Some(&state), &id, SandboxConfig::new()).await.unwrap();
    again.delete().await.unwrap();
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["endedReason"].as_str()), (Some("terminated"), Some("stopped")), "{v}");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ttl_still_deletes_a_stopped_session_and_its_container() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let container = s["containerId"].as_str().unwrap().to_string();
    let (st, _) = d.call(Method::POST, &format!("/api/sandbox/{id}/stop"), None).await;
    assert_eq!(st, 200);
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let key = id.clone();
    let change = dagger_sandbox_store::SessionUpdate { expires_at: Some(past), ..Default::default() };
    d.server.sessions().db(move |st| st.update(&key, &change)).await.unwrap();
    assert_eq!(dagger_sandbox_server::reaper::reap_once(d.server.sessions()).await, 1);
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["endedReason"].as_str()), (Some("terminated"), Some("expired")), "{v}");
    assert!(!container_exists(&container).await, "the stopped container was removed");
    d.server.shutdown().await;
}

//! A service that keeps running across a daemon restart: its later output is captured again (the
//! daemon follows the service's output record in the sandbox), on a real Docker engine.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

const REAP: Duration = Duration::from_secs(300);

/// A web server plus a counter printing `tick-N` every 200 ms, to stdout and stderr.
const TICKING: &str = "i=0; while true; do echo tick-$i; echo err-tick-$i >&2; i=$((i+1)); sleep 0.2; done & \
                       exec httpd -f -p 8080 -h /";

/// The highest `tick-N` (of `stream`) in the session's log backlog, if any.
async fn last_tick(d: &Daemon, id: &str, stream: &str) -> Option<u64> {
    let text = d.req(Method::GET, &format!("/api/sandbox/{id}/logs")).send().await.ok()?.text().await.ok()?;
    let prefix = if stream == "stderr" { "err-tick-" } else { "tick-" };
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v["stream"] == stream)
        .filter_map(|v| v["text"].as_str()?.trim().strip_prefix(prefix)?.parse::<u64>().ok())
        .max()
}

async fn wait_tick_over(d: &Daemon, id: &str, stream: &str, over: Option<u64>) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = last_tick(d, id, stream).await;
        if t.is_some() && t > over {
            return t;
        }
        if tokio::time::Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_service_output_is_captured_again_after_a_daemon_restart() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({"command": TICKING, "ports": [8080]})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let before = wait_tick_over(&d, &id, "stdout", None).await;
    assert!(before.is_some(), "the service's output is captured while the daemon runs");
    assert!(wait_tick_over(&d, &id, "stderr", None).await.is_some(), "stderr too");

    // A crash, then a clean restart: each time the still-running service's later output comes back.
    d.server.crash();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.reattached, 1, "{:?}", d.server.reconciled);
    let after = wait_tick_over(&d, &id, "stdout", before).await;
    assert!(after > before, "ticks after the restart are captured: before {before:?}, after {after:?}");
    assert!(wait_tick_over(&d, &id, "stderr", before).await > before, "stderr after the restart too");
    d.server.shutdown().await;
    let d = Daemon::start(dir.path(), REAP).await;
    let again = wait_tick_over(&d, &id, "stdout", after).await;
    assert!(again > after, "and after a clean restart: {after:?} then {again:?}");
    let (st, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(st, 200);
    d.server.shutdown().await;
}

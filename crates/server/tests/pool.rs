//! `serve --pool TEMPLATE=N` and `"pool": N` in templates.json: a create of just that template gets
//! a sandbox started ahead (counted in `/metrics`), any other create a fresh one; shutdown removes
//! what the pool still holds.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, BUSYBOX};
use dagger_sandbox_server::{start, ServeOptions};
use reqwest::Method;
use serde_json::json;

async fn pool_hits(d: &Daemon) -> u64 {
    let text = d.req(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("dagger_sandbox_pool_hits_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the pool counter is exported")
}

/// Containers of this daemon that belong to no session (the pool's).
async fn owned_containers(owner: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={}={owner}", dagger_sandbox::LABEL_OWNER)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A daemon whose `templates.json` is `templates`, started with `pools` (`serve --pool`), once
/// its pool holds a ready sandbox. The tempdir is its state dir.
async fn daemon_with_a_full_pool(
    templates: serde_json::Value,
    pools: Vec<(String, usize)>,
) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("templates.json"), templates.to_string()).unwrap();
    let server = start(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().to_path_buf(),
        reap_interval: Duration::from_secs(300),
        pools,
        ..Default::default()
    })
    .await
    .expect("daemon starts");
    let d = Daemon { server, http: reqwest::Client::new() };
    let owner = d.owner();
    let until = Instant::now() + Duration::from_secs(60);
    while owned_containers(&owner).await < 1 {
        assert!(Instant::now() < until, "the pool did not fill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The container runs a moment before the pool has finished making the sandbox.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (d, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_template_create_is_served_from_the_pool_and_shutdown_removes_the_rest() {
    let (d, _dir) = daemon_with_a_full_pool(json!({"bb": {"image": BUSYBOX}}), vec![("bb".into(), 1)]).await;
    let owner = d.owner();
    // Just the template: from the pool.
    let (status, s) = d.call(Method::POST, "/api/sandbox", Some(json!({"template": "bb"}))).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(pool_hits(&d).await, 1);
    let id = s["id"].as_str().unwrap().to_string();
    let (status, r) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "echo pooled"}))).await;
    assert_eq!((status, r["stdout"].as_str()), (200, Some("pooled\n")), "{r}");
    // Anything more (here an env) is not the pool's config: a fresh sandbox.
    let (status, s2) = d.call(Method::POST, "/api/sandbox", Some(json!({"template": "bb", "env": {"A": "1"}}))).await;
    assert_eq!(status, 201, "{s2}");
    assert_eq!(pool_hits(&d).await, 1);
    for sid in [&id, s2["id"].as_str().unwrap()] {
        let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{sid}"), None).await;
        assert!(status < 300, "{status}");
    }
    // The pool refills; shutdown removes its sandbox (sessions are left running, there are none).
    let until = Instant::now() + Duration::from_secs(60);
    while owned_containers(&owner).await < 1 {
        assert!(Instant::now() < until, "the pool did not refill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.server.shutdown().await;
    assert_eq!(owned_containers(&owner).await, 0, "shutdown removed the pooled sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_named_in_templates_json_fills_without_the_flag() {
    let (d, _dir) = daemon_with_a_full_pool(json!({"bb": {"image": BUSYBOX, "pool": 1}}), vec![]).await;
    let owner = d.owner();
    let (status, s) = d.call(Method::POST, "/api/sandbox", Some(json!({"template": "bb"}))).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(pool_hits(&d).await, 1, "the create was served from the pool");
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{}", s["id"].as_str().unwrap()), None).await;
    assert!(status < 300, "{status}");
    d.server.shutdown().await;
    assert_eq!(owned_containers(&owner).await, 0, "shutdown removed the pooled sandboxes");
}

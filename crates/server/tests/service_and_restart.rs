//! Port forwarding with a live log stream, and a daemon crash followed by a restart on the same
//! state dir, against a real Docker engine.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);

const HTTPD: &str = "mkdir -p /www && echo hello-from-httpd > /www/index.html && echo starting httpd && \
                     exec httpd -f -p 8080 -h /www";

/// Reads server-sent events as (event, data) pairs.
struct Events {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

impl Events {
    async fn open(d: &Daemon, path: &str) -> Events {
        let r = d.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let stream = r.bytes_stream().map(|b| b.map(|b| b.to_vec())).boxed();
        Events { stream, buf: String::new() }
    }

    /// The next event, waiting at most `limit`.
    async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for a log line of `stream` containing `needle`.
    async fn until_line(&mut self, stream: &str, needle: &str) -> Value {
        loop {
            match self.next(Duration::from_secs(20)).await {
                Some((e, v)) if e == "log" && v["stream"] == stream && v["text"].as_str().unwrap().contains(needle) => {
                    return v
                }
                Some((e, v)) if e == "end" => panic!("the stream ended before {needle:?}: {v}"),
                Some(_) => {}
                None => panic!("no line with {needle:?} within 20 s"),
            }
        }
    }
}

async fn fetch(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_with_a_port_serves_on_its_host_url_and_streams_its_logs() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({"ports": [8080], "command": HTTPD})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let host_url = s["hostUrl"].as_str().expect("hostUrl set").to_string();
    assert!(host_url.starts_with("http://127.0.0.1:"), "{s}");
    assert_eq!(s["ports"][0]["containerPort"], 8080);
    assert_eq!(s["ports"][0]["url"], host_url.as_str());
    assert_eq!(s["command"], HTTPD);
    assert_eq!(fetch(&host_url).await, "hello-from-httpd\n");

    let mut events = Events::open(&d, &format!("/api/sandbox/{id}/logs?follow=true")).await;
    let line = events.until_line("stdout", "starting httpd").await;
    assert_eq!(line["text"], "starting httpd\n");
    assert!(chrono::DateTime::parse_from_rfc3339(line["at"].as_str().unwrap()).is_ok(), "{line}");
    // New output arrives on the open stream.
    let (status, _) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "echo live-line"}))).await;
    assert_eq!(status, 200);
    assert_eq!(events.until_line("system", "$ echo live-line").await["text"], "$ echo live-line\n");
    assert_eq!(events.until_line("stdout", "live-line").await["text"], "live-line\n");
    events.until_line("system", "exit code 0").await;
    // Stopping the session ends the stream with the reason.
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200);
    loop {
        match events.next(Duration::from_secs(20)).await {
            Some((e, v)) if e == "end" => {
                assert_eq!(v, json!({"status": "terminated", "endedReason": "stopped"}));
                break;
            }
            Some(_) => {}
            None => panic!("no end event after DELETE"),
        }
    }
    assert!(reqwest::get(&host_url).await.is_err() || fetch(&host_url).await.is_empty(), "nothing serves after DELETE");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_that_never_listens_fails_the_create_and_leaves_nothing() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let body =
        json!({"image": BUSYBOX, "backend": "docker", "ports": [8080], "command": "echo about to fail >&2; exit 7"});
    let (status, v) = d.call(Method::POST, "/api/sandbox", Some(body)).await;
    assert!(status >= 500, "{status} {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("about to fail"), "the error says why: {v}");
    let (_, list) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
    assert_eq!(list["sandboxes"], json!([]));
    assert!(containers_of(&d.owner()).await.is_empty(), "no container is left running");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_crash_a_restart_takes_sessions_back_and_removes_orphans() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let plain = d.create(json!({})).await;
    let plain_id = plain["id"].as_str().unwrap().to_string();
    let (status, _) = d
        .call(Method::POST, &format!("/api/sandbox/{plain_id}/exec"), Some(json!({"command": "echo kept > work.txt"})))
        .await;
    assert_eq!(status, 200);
    let served = d.create(json!({"ports": [8080], "command": HTTPD})).await;
    let served_id = served["id"].as_str().unwrap().to_string();
    let vanished = d.create(json!({})).await;
    let vanished_id = vanished["id"].as_str().unwrap().to_string();
    let owner = d.owner();
    d.server.crash();

    // While the daemon is down: one container disappears, one of ours without a session appears,
    // and one of another daemon appears (which must be left alone).
    let docker = docker();
    let rm = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(vanished["containerId"].as_str().unwrap(), Some(rm)).await.unwrap();
    let planted = plant(&owner, "sbx-planted00000").await;
    let foreign_owner = format!("daemon:{}-other", dir.path().display());
    let _foreign_cleanup = Cleanup(foreign_owner.clone());
    let foreign = plant(&foreign_owner, "sbx-foreign00000").await;

    let d = Daemon::start(dir.path(), REAP).await;
    let r = &d.server.reconciled;
    assert_eq!((r.reattached, r.lost, r.orphan_containers), (2, 1, 1), "{r:?}");
    let (status, out) =
        d.call(Method::POST, &format!("/api/sandbox/{plain_id}/exec"), Some(json!({"command": "cat work.txt"}))).await;
    assert_eq!((status, out["stdout"].as_str()), (200, Some("kept\n")), "the work survived: {out}");
    let (_, s) = d.call(Method::GET, &format!("/api/sandbox/{served_id}"), None).await;
    assert_eq!(s["status"], "active");
    assert_eq!(fetch(s["hostUrl"].as_str().unwrap()).await, "hello-from-httpd\n", "the service still answers");
    let (_, s) = d.call(Method::GET, &format!("/api/sandbox/{vanished_id}"), None).await;
    assert_eq!((s["status"].as_str(), s["endedReason"].as_str()), (Some("terminated"), Some("lost")), "{s}");
    assert!(!container_exists(&planted).await, "a container of ours with no session is removed");
    assert!(container_exists(&foreign).await, "another daemon's container is left alone");
    let mut ours = containers_of(&owner).await;
    ours.sort();
    let mut expected =
        vec![plain["containerId"].as_str().unwrap().to_string(), served["containerId"].as_str().unwrap().to_string()];
    expected.sort();
    assert_eq!(ours, expected, "every container of ours belongs to a live session");

    // A graceful stop leaves the sessions running too; the next start takes them back again.
    d.server.shutdown().await;
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.reattached, 2);
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 2})));
    assert!(containers_of(&owner).await.is_empty());
    d.server.shutdown().await;
}

/// Starts a busybox container labelled like a sandbox of `owner`, as if a daemon had made it.
async fn plant(owner: &str, sandbox: &str) -> String {
    let labels = HashMap::from([
        (dagger_sandbox::LABEL_MANAGED.to_string(), "1".to_string()),
        (dagger_sandbox::LABEL_OWNER.to_string(), owner.to_string()),
        (dagger_sandbox::LABEL_SANDBOX.to_string(), sandbox.to_string()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(BUSYBOX.into()),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        labels: Some(labels),
        network_disabled: Some(true),
        ..Default::default()
    };
    let docker = docker();
    let c = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await.unwrap();
    docker.start_container(&c.id, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    c.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_stopped_outside_the_daemon_ends_its_session() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let mut events = Events::open(&d, &format!("/api/sandbox/{id}/logs?follow=true")).await;

    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default().t(1).build();
    let stopped_at = std::time::Instant::now();
    docker().stop_container(s["containerId"].as_str().unwrap(), Some(stop)).await.unwrap();
    println!("docker stop returned after {:?}", stopped_at.elapsed());

    let mut ended = None;
    while let Some((event, data)) = events.next(Duration::from_secs(20)).await {
        if event == "end" {
            ended = Some(data);
            break;
        }
    }
    assert!(ended.is_some(), "a follower gets its end event when the container stops");
    println!("end event {:?} after docker stop began", stopped_at.elapsed());
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["endedReason"].as_str()), (Some("terminated"), Some("engine_stopped")), "{v}");
    let (status, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{v}");
    assert!(containers_of(&d.owner()).await.is_empty(), "the stopped container is removed with its session");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_that_exits_by_itself_ends_its_session_as_failed_and_the_log_says_why() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let command = "mkdir -p /www && echo up > /www/index.html && (httpd -f -p 8080 -h /www &) && sleep 2 && exit 5";
    let s = d.create(json!({"ports": [8080], "command": command})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let mut events = Events::open(&d, &format!("/api/sandbox/{id}/logs?follow=true")).await;
    assert_eq!(events.until_line("system", "service exited").await["text"], "service exited with code 5\n");
    loop {
        match events.next(Duration::from_secs(30)).await {
            Some((e, v)) if e == "end" => {
                assert_eq!(v, json!({"status": "terminated", "endedReason": "failed"}));
                break;
            }
            Some(_) => {}
            None => panic!("no end event after the service exited"),
        }
    }
    let (status, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["endedReason"].as_str()), (Some("terminated"), Some("failed")), "{v}");
    let (status, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{v}");
    assert!(eventually(Duration::from_secs(20), || async { containers_of(&d.owner()).await.is_empty() }).await);
    d.server.shutdown().await;
}

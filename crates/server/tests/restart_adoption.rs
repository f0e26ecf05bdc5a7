//! What a restart after a crash tells and restores per session: a service whose process is gone
//! (no port answers for it) is started again, and a local session's log says its env values were
//! not kept (a host directory records none, unlike a container).

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

const REAP: Duration = Duration::from_secs(300);

/// The session's log backlog (`GET .../logs` without follow) as text.
async fn backlog(d: &Daemon, id: &str) -> String {
    d.req(Method::GET, &format!("/api/sandbox/{id}/logs")).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_crash_a_portless_service_starts_again_and_lost_env_values_are_named() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let served = d.create(json!({"command": "echo service-up >> /tmp/starts; exec sleep 600"})).await;
    let served_id = served["id"].as_str().unwrap().to_string();
    let (status, local) =
        d.call(Method::POST, "/api/sandbox", Some(json!({"backend": "local", "env": {"API_KEY": "s3cret"}}))).await;
    assert_eq!(status, 201, "{local}");
    let local_id = local["id"].as_str().unwrap().to_string();
    let started = || async {
        let (_, r) = d
            .call(Method::POST, &format!("/api/sandbox/{served_id}/exec"), Some(json!({"command": "cat /tmp/starts"})))
            .await;
        r["stdout"].as_str().unwrap_or_default().to_string()
    };
    assert!(eventually(Duration::from_secs(20), || async { started().await == "service-up\n" }).await);
    d.server.crash();
    // The service dies while the daemon is away; the container stays. (Its pid is in the record;
    // the image has no pkill, and `killall sleep` would end the container's own keep-alive.)
    let (docker, container) = (docker(), served["containerId"].as_str().unwrap().to_string());
    let kill = "kill $(cat /tmp/.dagger-sandbox-service/pid)";
    let exec = docker
        .create_exec(
            &container,
            bollard::models::ExecConfig {
                cmd: Some(vec!["sh".into(), "-c".into(), kill.into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while futures_util::StreamExt::next(&mut output).await.is_some() {}
    }
    let done = docker.inspect_exec(&exec.id).await.unwrap();
    assert_eq!(done.exit_code, Some(0), "the service was killed: {done:?}");

    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.reattached, 2, "{:?}", d.server.reconciled);
    let started = || async {
        let (_, r) = d
            .call(Method::POST, &format!("/api/sandbox/{served_id}/exec"), Some(json!({"command": "cat /tmp/starts"})))
            .await;
        r["stdout"].as_str().unwrap_or_default().to_string()
    };
    assert!(
        eventually(Duration::from_secs(20), || async { started().await == "service-up\nservice-up\n" }).await,
        "the service was started again: {:?}",
        started().await
    );
    let log = backlog(&d, &served_id).await;
    assert!(log.contains("daemon restarted: the session was taken back"), "{log}");

    let log = backlog(&d, &local_id).await;
    assert!(log.contains("the values of API_KEY were not kept across the restart; pass them per exec"), "{log}");
    assert!(!log.contains("s3cret"), "the value itself is never logged: {log}");
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 2})));
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_crash_a_portless_service_that_still_runs_is_not_started_twice() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let served = d.create(json!({"command": "echo service-up >> /tmp/starts; exec sleep 600"})).await;
    let id = served["id"].as_str().unwrap().to_string();
    let starts = |d: &Daemon| {
        let req = d.req(Method::POST, &format!("/api/sandbox/{id}/exec")).json(&json!({"command": "cat /tmp/starts"}));
        async move { req.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["stdout"].clone() }
    };
    assert!(eventually(Duration::from_secs(20), || async { starts(&d).await == "service-up\n" }).await);
    d.server.crash();

    // The service kept running in its container while the daemon was away.
    let d = Daemon::start(dir.path(), REAP).await;
    assert_eq!(d.server.reconciled.reattached, 1, "{:?}", d.server.reconciled);
    let log = backlog(&d, &id).await;
    assert!(log.contains("the service is still running"), "{log}");
    // A second start would append a line within moments; give it the time a start takes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(starts(&d).await, "service-up\n", "the service ran once, not twice");
    let (_, r) = d
        .call(
            Method::POST,
            &format!("/api/sandbox/{id}/exec"),
            Some(json!({"command": "ls /proc | grep -c '^[0-9]' >/dev/null; for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\000' ' '; echo; done | grep -c '^sleep 600'"})),
        )
        .await;
    assert_eq!(r["stdout"], "1\n", "one sleep 600 in the container: {r}");
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 1})));
    d.server.shutdown().await;
}

//! The daemon as a real process: `kill -9` loses no session, SIGTERM stops it cleanly and leaves
//! sessions running, and each restart takes them back. The test binary re-runs itself as the
//! daemon (the `child_daemon` test below, armed by an environment variable).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{json, Value};

const CHILD_ENV: &str = "DAGGER_SANDBOX_SERVER_TEST_CHILD_STATE_DIR";

/// Runs the daemon through `run` when armed by the parent test; otherwise does nothing.
#[test]
fn child_daemon() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(dagger_sandbox_server::run(dagger_sandbox_server::ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.into(),
        reap_interval: Duration::from_secs(300),
        pools: Vec::new(),
    }))
    .expect("the daemon runs until it is signalled");
}

/// A daemon process started by this test; killed on drop if still running.
struct DaemonProcess {
    child: Child,
    base: String,
    token: String,
}

impl DaemonProcess {
    fn spawn(state: &Path) -> DaemonProcess {
        Self::spawn_with(state, &[])
    }

    fn spawn_with(state: &Path, env: &[(&str, &str)]) -> DaemonProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_daemon", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, state)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let prefix = "dagger-sandbox daemon listening on ";
        let url = loop {
            match lines.next() {
                // libtest may have printed `test child_daemon ... ` on the same line.
                Some(Ok(line)) if line.contains(prefix) => {
                    let at = line.find(prefix).unwrap() + prefix.len();
                    break line[at..].trim_end().to_string();
                }
                Some(Ok(_)) => {}
                _ => panic!("the daemon exited before it printed its URL"),
            }
        };
        // Keep draining, so the daemon never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let (base, token) = url.split_once("/?token=").expect("URL carries the token");
        assert!(base.starts_with("http://127.0.0.1:"), "{url}");
        DaemonProcess { child, base: base.to_string(), token: token.to_string() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    fn signal(&mut self, sig: Signal) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_session_and_sigterm_leaves_them_running() {
    let (_cleanup, dir) = state_dir();
    let owner = format!("daemon:{}", std::fs::canonicalize(dir.path()).unwrap().display());
    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn(dir.path()));
    let body = json!({"image": BUSYBOX, "backend": "docker"});
    let (status, plain) = d.call(Method::POST, "/api/sandbox", Some(body.clone())).await;
    assert_eq!(status, 201, "{plain}");
    let plain_id = plain["id"].as_str().unwrap().to_string();
    let exec_path = format!("/api/sandbox/{plain_id}/exec");
    let (status, _) = d.call(Method::POST, &exec_path, Some(json!({"command": "echo kept > work.txt"}))).await;
    assert_eq!(status, 200);
    let mut with_port = body.clone();
    with_port["ports"] = json!([8080]);
    with_port["command"] = json!(HTTPD);
    let (status, served) = d.call(Method::POST, "/api/sandbox", Some(with_port)).await;
    assert_eq!(status, 201, "{served}");
    let host_url = served["hostUrl"].as_str().unwrap().to_string();

    assert!(!d.signal(Signal::SIGKILL).success());
    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn(dir.path()));
    let (status, out) = d.call(Method::POST, &exec_path, Some(json!({"command": "cat work.txt"}))).await;
    assert_eq!((status, out["stdout"].as_str()), (200, Some("kept\n")), "{out}");
    let page = reqwest::get(&host_url).await.unwrap().text().await.unwrap();
    assert_eq!(page, "hello-from-httpd\n", "the service answers after the daemon was killed");
    assert_eq!(containers_of(&owner).await.len(), 2, "no container of ours without a session");

    let status = d.signal(Signal::SIGTERM);
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    assert!(dagger_sandbox_server::state::read_daemon_info(dir.path()).is_none(), "daemon.json is removed");
    assert_eq!(containers_of(&owner).await.len(), 2, "a clean stop leaves the sessions running");

    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn(dir.path()));
    let (_, list) = d.call(Method::GET, "/api/sandbox", None).await;
    assert_eq!(list["sandboxes"].as_array().unwrap().len(), 2, "{list}");
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 2})));
    assert!(containers_of(&owner).await.is_empty());
    assert!(d.signal(Signal::SIGTERM).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_container_engine_a_create_fails_unless_it_asks_for_the_host() {
    // Docker "stopped": the daemon cannot reach it. A REST create must not silently run the
    // caller's commands on the host.
    let (_cleanup, dir) = state_dir();
    let d = DaemonProcess::spawn_with(dir.path(), &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let (status, body) = d.call(Method::POST, "/api/sandbox", Some(json!({}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ENGINE_UNAVAILABLE", "{body}");
    let (_, list) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
    assert_eq!(list["sandboxes"].as_array().map(Vec::len), Some(0), "nothing recorded: {list}");
    // Asked for explicitly, the local backend is used, and the session says so.
    let (status, body) = d.call(Method::POST, "/api/sandbox", Some(json!({"fallback": true}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["isolation"], "process", "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert!(status < 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_engine_is_down_keeps_sessions_for_when_it_returns() {
    let (_cleanup, dir) = state_dir();
    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn(dir.path()));
    let (status, s) = d.call(Method::POST, "/api/sandbox", Some(json!({"image": BUSYBOX, "backend": "docker"}))).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    let container = s["containerId"].as_str().unwrap().to_string();
    let exec_path = format!("/api/sandbox/{id}/exec");
    let (status, _) = d.call(Method::POST, &exec_path, Some(json!({"command": "echo kept > work.txt"}))).await;
    assert_eq!(status, 200);
    assert!(!d.signal(Signal::SIGKILL).success());

    // The engine is unreachable while the daemon starts: the session is kept, calls say why.
    let down = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn_with(dir.path(), &down));
    let (_, v) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((v["status"].as_str(), v["endedReason"].as_str()), (Some("active"), None), "{v}");
    let (status, v) = d.call(Method::POST, &exec_path, Some(json!({"command": "true"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("ENGINE_UNAVAILABLE")), "{v}");
    assert!(d.signal(Signal::SIGTERM).success());
    assert!(container_exists(&container).await, "the container is kept while its engine is away");

    // The engine is back: the next start takes the session back, and its work is there.
    let mut d = tokio::task::block_in_place(|| DaemonProcess::spawn(dir.path()));
    let (status, out) = d.call(Method::POST, &exec_path, Some(json!({"command": "cat work.txt"}))).await;
    assert_eq!((status, out["stdout"].as_str()), (200, Some("kept\n")), "{out}");
    let (status, _) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!(status, 200);
    assert!(d.signal(Signal::SIGTERM).success());
}

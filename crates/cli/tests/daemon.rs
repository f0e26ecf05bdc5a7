//! The CLI against the real daemon and the real Docker engine: a service session end to end, the
//! auto-start, the token, the TTL reaper, a crash with live sessions, and 50 creates at once.
//! Each test has its own state dir, and its daemon and containers are removed even when it fails.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{describe, stderr, stdout, Harness, BUSYBOX, NODE};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The session keys every `--json` session object carries (null when absent, never missing).
const SESSION_KEYS: [&str; 10] = [
    "id",
    "status",
    "backend",
    "image",
    "projectId",
    "containerId",
    "hostUrl",
    "createdAt",
    "expiresAt",
    "endedReason",
];

/// These tests load one Docker engine on a small machine: one at a time keeps their bounded waits
/// about readiness, not about contention.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn assert_session(v: &Value) {
    for key in SESSION_KEYS {
        assert!(v.get(key).is_some(), "the session has {key}: {v}");
    }
}

/// One HTTP request from the test itself (not through the CLI): `(status, body)`.
fn http(method: reqwest::Method, url: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        let mut req = client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    })
}

fn token(h: &Harness) -> String {
    std::fs::read_to_string(h.state().join("token")).unwrap().trim().to_string()
}

fn create_busybox(h: &Harness, extra: &[&str]) -> Value {
    let mut args = vec!["create", "--image", BUSYBOX, "--backend", "docker", "--json"];
    args.extend_from_slice(extra);
    let v = h.json(&args);
    assert_session(&v);
    v
}

#[test]
fn a_service_session_from_create_to_clean() {
    if !common::docker_ready("a_service_session_from_create_to_clean") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    let server = "require('http').createServer((q,s)=>s.end('hi')).listen(8080,()=>console.log('listening on 8080'))";
    let s = h.json(&[
        "create",
        "--image",
        NODE,
        "--backend",
        "docker",
        "--project",
        "demo",
        "--port",
        "8080",
        "--json",
        "--",
        "node",
        "-e",
        server,
    ]);
    assert_session(&s);
    assert_eq!(s["status"], "active");
    assert_eq!(s["backend"], "docker");
    assert_eq!(s["image"], NODE);
    assert_eq!(s["projectId"], "demo");
    assert!(s["endedReason"].is_null());
    let id = s["id"].as_str().unwrap().to_string();
    let container = s["containerId"].as_str().unwrap().to_string();
    let url = s["hostUrl"].as_str().expect("a service session has a hostUrl").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(http(reqwest::Method::GET, &url, None), (200, "hi".to_string()));
    assert!(h.state().join("daemon.log").exists(), "the CLI started the daemon in the background");

    // logs: what the service printed so far.
    assert!(
        common::eventually(Duration::from_secs(10), || stdout(&h.run(&["logs", &id])).contains("listening on 8080")),
        "logs show the service's output: {}",
        describe(&h.run(&["logs", &id]))
    );

    let list = h.json(&["list", "--json"]);
    let found = list["sandboxes"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).cloned();
    assert_session(&found.expect("list --json contains the session"));
    let table = stdout(&h.run(&["ls"]));
    assert!(table.starts_with("ID") && table.contains(&id) && table.contains(&url), "{table}");
    assert!(table.contains("in 59m") || table.contains("in 1h"), "relative expiry: {table}");

    // exec passes the exit code and the output through.
    let out = h.run(&["exec", &id, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let out = h.run(&["exec", &id, "--", "sh", "-c", "echo out; echo err >&2"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let v = h.json(&["exec", &id, "--json", "--", "echo json"]);
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["stdout"], "json\n");
    assert!(v["durationMs"].is_u64());
    let logs = stdout(&h.run(&["logs", &id]));
    assert!(logs.contains("$ echo json"), "execs show in the logs: {logs}");

    // A follower sees new output as it comes and ends by itself when the session is stopped.
    let follower = {
        let mut cmd = h.cmd();
        cmd.args(["logs", &id, "--follow"]);
        std::thread::spawn(move || common::run_bounded(&mut cmd, Duration::from_secs(60)))
    };
    std::thread::sleep(Duration::from_millis(500));
    h.json(&["exec", &id, "--json", "--", "echo followed"]);

    // stop: terminated, container gone, and a second stop changes nothing.
    let stopped = h.json(&["stop", &id, "--json"]);
    let followed = follower.join().unwrap();
    assert!(followed.status.success(), "{}", describe(&followed));
    assert!(stdout(&followed).contains("listening on 8080"), "{}", describe(&followed));
    assert!(stdout(&followed).contains("followed\n"), "{}", describe(&followed));
    assert!(stderr(&followed).contains("session terminated (stopped)"), "{}", describe(&followed));
    assert_session(&stopped);
    assert_eq!(stopped["status"], "terminated");
    assert_eq!(stopped["endedReason"], "stopped");
    assert!(!common::container_exists(&container), "stop removed the container");
    assert_eq!(h.json(&["stop", &id, "--json"])["endedReason"], "stopped");
    let out = h.run(&["exec", &id, "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("(SESSION_ENDED)"), "{}", describe(&out));
    let out = h.run(&["stop", "sbx-nosuchsession"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).starts_with("error: ") && stderr(&out).contains("(NOT_FOUND)"), "{}", describe(&out));
    let all = h.json(&["list", "--all", "--json"]);
    assert!(all["sandboxes"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()));
    assert!(!h.json(&["list", "--json"])["sandboxes"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()));

    // clean: stops what is left.
    let other = create_busybox(&h, &[]);
    let other_container = other["containerId"].as_str().unwrap().to_string();
    assert_eq!(h.json(&["clean", "--json"]), serde_json::json!({"stopped": 1}));
    assert!(!common::container_exists(&other_container));
    assert_eq!(h.json(&["list", "--json"])["sandboxes"], serde_json::json!([]));
    assert!(h.containers().is_empty(), "no container of this daemon is left: {:?}", h.containers());
}

#[test]
fn the_daemon_is_started_once_reused_and_restarted_when_its_address_is_stale() {
    if !common::docker_ready("the_daemon_is_started_once_reused_and_restarted_when_its_address_is_stale") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    h.json(&["list", "--json"]);
    let first = h.daemon_pid().expect("list started a daemon");
    h.json(&["list", "--json"]);
    assert_eq!(h.daemon_pid(), Some(first), "a running daemon is reused");
    let info = std::fs::read_to_string(h.state().join("daemon.json")).unwrap();
    let v: Value = serde_json::from_str(&info).unwrap();
    assert!(v["addr"].is_string() && v["pid"].is_u64() && v["startedAt"].is_string());

    // A daemon that died without cleaning up leaves a stale daemon.json: the next command replaces it.
    assert!(h.signal_daemon(Signal::SIGKILL));
    assert!(h.state().join("daemon.json").exists());
    h.json(&["list", "--json"]);
    let second = h.daemon_pid().expect("a new daemon");
    assert_ne!(second, first);
}

#[test]
fn requests_without_the_token_are_refused() {
    if !common::docker_ready("requests_without_the_token_are_refused") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    h.json(&["list", "--json"]);
    let base = format!("http://{}", h.daemon_addr());
    for path in ["/api/sandbox", "/api/health"] {
        let (status, body) = http(reqwest::Method::GET, &format!("{base}{path}"), None);
        assert_eq!(status, 401, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "UNAUTHORIZED");
        let (status, _) = http(reqwest::Method::GET, &format!("{base}{path}"), Some("wrong-token"));
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    let (status, _) = http(reqwest::Method::DELETE, &format!("{base}/api/sandbox"), None);
    assert_eq!(status, 401);
    let (status, body) = http(reqwest::Method::GET, &format!("{base}/api/sandbox"), Some(&token(&h)));
    assert_eq!(status, 200, "{body}");
}

/// A program on the recorded address that is not our daemon: it answers every request with a
/// health-like 200 and a made-up identity proof, and keeps every byte it was sent.
fn impostor(listener: std::net::TcpListener) -> std::sync::Arc<Mutex<Vec<u8>>> {
    use std::io::{Read, Write};
    let got = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock().unwrap().extend_from_slice(&req);
            let body =
                format!(r#"{{"status":"ok","version":"0.1.0","pid":1,"sessions":0,"proof":"{}"}}"#, "0".repeat(64));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    got
}

#[test]
fn the_token_never_goes_to_a_program_that_took_the_daemons_port() {
    if !common::docker_ready("the_token_never_goes_to_a_program_that_took_the_daemons_port") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    h.json(&["list", "--json"]);
    let addr = h.daemon_addr();
    let token = token(&h);
    // kill -9 leaves daemon.json behind; someone else binds the port it names.
    assert!(h.signal_daemon(Signal::SIGKILL));
    // The killed daemon's other threads may still be closing its files for a moment after its
    // main thread shows as a zombie: wait for the port to be free.
    let mut bound = std::net::TcpListener::bind(&addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bound.is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        bound = std::net::TcpListener::bind(&addr);
    }
    let listener = bound.expect("binding the dead daemon's port");
    let got = impostor(listener);

    let out = h.run(&["list", "--json"]);
    let received = String::from_utf8_lossy(&got.lock().unwrap()).to_string();
    assert!(!received.contains(&token), "the listener received the token: {received}");
    assert!(!received.to_ascii_lowercase().contains("authorization"), "the listener got credentials: {received}");
    assert!(received.contains("/api/identity"), "the CLI asked the listener to prove itself: {received}");
    assert!(out.status.success(), "the CLI started a daemon of its own: {}", describe(&out));
    assert!(
        stderr(&out).contains("is not this state dir's daemon") && stderr(&out).contains("the token was not sent"),
        "the CLI says why it did not use the recorded address: {}",
        describe(&out)
    );
    assert_ne!(h.daemon_addr(), addr, "daemon.json names the new daemon");
}

#[test]
fn an_expired_session_is_reaped_from_the_engine() {
    if !common::docker_ready("an_expired_session_is_reaped_from_the_engine") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    // The test's own foreground daemon, with a fast reaper.
    let mut daemon = h
        .cmd()
        .args(["serve", "--addr", "127.0.0.1:0", "--reap-interval", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(h.state().join("serve.stderr")).unwrap())
        .spawn()
        .unwrap();
    let ready = common::eventually(Duration::from_secs(20), || {
        h.state().join("daemon.json").exists() && h.daemon_pid() == Some(daemon.id())
    });
    assert!(ready, "serve wrote daemon.json: {:?}", std::fs::read_to_string(h.state().join("serve.stderr")));
    let s = create_busybox(&h, &["--ttl", "2s"]);
    let created = Instant::now();
    let container = s["containerId"].as_str().unwrap().to_string();
    let id = s["id"].as_str().unwrap().to_string();
    let gone = common::eventually(Duration::from_secs(5), || !common::container_exists(&container));
    assert!(gone, "the container was still there {:?} after create", created.elapsed());
    let all = h.json(&["list", "--all", "--json"]);
    let session = all["sandboxes"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(session["status"], "terminated");
    assert_eq!(session["endedReason"], "expired");
    assert!(h.signal_daemon(Signal::SIGTERM));
    let _ = daemon.wait();
}

#[test]
fn a_crashed_daemon_leaves_every_session_usable_or_ended() {
    if !common::docker_ready("a_crashed_daemon_leaves_every_session_usable_or_ended") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    h.json(&["list", "--json"]);
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10).map(|_| scope.spawn(|| create_busybox(&h, &[]))).collect();
        handles.into_iter().map(|t| t.join().unwrap()["id"].as_str().unwrap().to_string()).collect()
    });
    assert_eq!(h.containers().len(), 10);
    let before = h.daemon_pid().unwrap();
    assert!(h.signal_daemon(Signal::SIGKILL), "the daemon died");

    // Any command starts a new daemon, which reconciles with the engine.
    let all = h.json(&["list", "--all", "--json"]);
    assert_ne!(h.daemon_pid(), Some(before));
    let sessions = all["sandboxes"].as_array().unwrap();
    assert_eq!(sessions.len(), 10, "{all}");
    let active = sessions.iter().filter(|s| s["status"] == "active").count();
    eprintln!("after kill -9 and restart: {active} of 10 sessions still active, the rest ended");
    for id in &ids {
        let s = sessions.iter().find(|x| x["id"] == id.as_str()).unwrap_or_else(|| panic!("{id} is listed"));
        assert_session(s);
        match s["status"].as_str().unwrap() {
            "active" => {
                let out = h.run(&["exec", id, "--", "echo alive"]);
                assert!(out.status.success(), "{id} is usable: {}", describe(&out));
                assert_eq!(stdout(&out), "alive\n");
            }
            "terminated" => assert!(s["endedReason"].is_string(), "{id} says why it ended: {s}"),
            other => panic!("{id} is {other}"),
        }
    }
    // No container of ours without an active session.
    let active: Vec<String> = h.json(&["list", "--json"])["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["containerId"].as_str().map(str::to_string))
        .collect();
    let settled = common::eventually(Duration::from_secs(10), || {
        h.containers().iter().all(|c| active.iter().any(|a| a.starts_with(c.as_str()) || c.starts_with(a.as_str())))
    });
    assert!(settled, "containers {:?}, active sessions' containers {active:?}", h.containers());
    h.json(&["clean", "--json"]);
    assert!(h.containers().is_empty());
}

#[test]
fn fifty_concurrent_creates_all_succeed() {
    if !common::docker_ready("fifty_concurrent_creates_all_succeed") {
        return;
    }
    let _serial = serial();
    let h = Harness::new();
    // 50 CLI processes on a fresh state dir: they also race to start the daemon, and one must win.
    let started = Instant::now();
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    // The daemon one of them starts inherits this: room for all 50 (default 32).
                    let mut cmd = h.cmd();
                    cmd.args(["create", "--image", BUSYBOX, "--backend", "docker", "--json"])
                        .env("DAGGER_SANDBOX_MAX_SANDBOXES", "50");
                    common::run_bounded(&mut cmd, Duration::from_secs(180))
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    eprintln!("50 concurrent creates took {:?}", started.elapsed());
    let mut ids = Vec::new();
    for out in &outputs {
        assert!(out.status.success(), "{}", describe(out));
        assert!(!stderr(out).to_lowercase().contains("locked"), "{}", describe(out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_session(&v);
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let listed = h.json(&["list", "--json"]);
    assert_eq!(listed["sandboxes"].as_array().unwrap().len(), 50);
    assert_eq!(h.containers().len(), 50);
    let log = std::fs::read_to_string(h.state().join("daemon.log")).unwrap_or_default();
    assert_eq!(log.matches("starting the daemon in the background").count(), 1, "one daemon was started:\n{log}");
    assert_eq!(h.json(&["clean", "--json"])["stopped"], 50);
    assert!(h.containers().is_empty());
}

#[test]
fn a_starting_daemon_removes_the_sandboxes_of_dead_programs_and_keeps_the_rest() {
    if !common::docker_ready("a_starting_daemon_removes_the_sandboxes_of_dead_programs_and_keeps_the_rest") {
        return;
    }
    let _serial = serial();
    // A program that ran here and died without closing its sandbox (a bridge client killed with
    // SIGKILL): our own child, run to completion, so its pid names no running process.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_string();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap().display().to_string();
    let ns = ns.trim_start_matches("pid:[").trim_end_matches(']').to_string();
    let host = dagger_sandbox::host_id();
    let plant = |owner: &str| -> String {
        let out = std::process::Command::new("docker")
            .args(["run", "-d", "--label", "dev.dagger-sandbox.managed=1", "--label"])
            .arg(format!("{}={owner}", common::OWNER_LABEL))
            .args([BUSYBOX, "sleep", "300"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        stdout(&out).trim().to_string()
    };
    let dead = plant(&format!("{dead_pid}@{boot}@{ns}@{host}"));
    // A live program's sandbox (this test process) and one of another machine stay.
    let alive = plant(&format!("{}@{boot}@{ns}@{host}", std::process::id()));
    let elsewhere = plant(&format!("{dead_pid}@{boot}@{ns}@another-machine:0123"));

    let h = Harness::new();
    h.json(&["list", "--json"]); // starts the daemon, which reconciles before it answers
    let (dead_gone, alive_kept, elsewhere_kept) =
        (!common::container_exists(&dead), common::container_exists(&alive), common::container_exists(&elsewhere));
    let _ = std::process::Command::new("docker").args(["rm", "-f", &dead, &alive, &elsewhere]).output();
    assert!(dead_gone, "the sandbox of a dead program was removed when the daemon started");
    assert!(alive_kept && elsewhere_kept, "a live program's and another host's sandboxes were left alone");
}

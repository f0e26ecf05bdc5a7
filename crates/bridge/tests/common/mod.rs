//! The real bridge binary driven over its stdio: start it, send lines, read answers, finish at EOF.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";

/// A running bridge with a reader thread collecting its stdout lines.
pub struct Bridge {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<String>,
    pub next_id: i64,
}

impl Bridge {
    pub fn start(args: &[&str]) -> Bridge {
        Self::start_env(args, &[])
    }

    /// `start` with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dagger-sandbox-bridge"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the bridge");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Bridge { child, stdin, lines, next_id: 1000 }
    }

    pub fn started() -> Bridge {
        let mut b = Bridge::start(&[]);
        let r = b.call("initialize", json!({"protocolVersion": "1"}));
        assert_eq!(r["result"]["protocolVersion"], "1", "{r}");
        b
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, id: Value, method: &str, params: Value) {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(msg.to_string().as_bytes());
    }

    pub fn recv(&self) -> Value {
        let line = self.lines.recv_timeout(Duration::from_secs(60)).expect("the bridge answered within 60 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carried a non-JSON line {line:?}: {e}"))
    }

    /// Sends a request and returns its response (notifications before it are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!(id), method, params);
        loop {
            let m = self.recv();
            if m["id"] == json!(id) {
                return m;
            }
        }
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params);
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    pub fn create(&mut self) -> String {
        self.ok("sandbox/create", backend_config())["sandboxId"].as_str().unwrap().to_string()
    }

    /// Closes stdin and waits for the process; returns its exit code and what it still wrote.
    pub fn finish(mut self) -> (i32, Vec<Value>) {
        drop(self.stdin.take());
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the bridge did not exit after EOF");
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest = self.lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
        (status.code().unwrap_or(-1), rest)
    }
}

pub fn docker_here() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", BUSYBOX])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or {BUSYBOX} is not available");
    }
    ok
}

/// Docker when it is here (always in CI), otherwise local with a visible note.
pub fn backend_config() -> Value {
    if docker_here() {
        json!({"backend": "docker", "image": BUSYBOX, "fallback": false})
    } else {
        println!("SKIPPED: docker for the bridge tests; using the local backend");
        json!({"backend": "local"})
    }
}

pub fn code(r: &Value) -> i64 {
    r["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error, got {r}"))
}

pub fn managed_containers(ids: &[String]) -> usize {
    ids.iter()
        .map(|id| {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=dev.dagger-sandbox.sandbox={id}")])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        })
        .sum()
}

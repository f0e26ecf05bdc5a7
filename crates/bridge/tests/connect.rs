//! `persistent: true` and `sandbox/connect` through the real binaries: a sandbox made by one
//! bridge through the daemon outlives that bridge, and another bridge drives it by id.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

/// The `dagger-sandbox` CLI next to the bridge (it starts the daemon).
fn cli() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_dagger-sandbox-bridge")).with_file_name("dagger-sandbox");
    assert!(p.exists(), "{} is missing: run `cargo build -p dagger-sandbox-cli` first", p.display());
    p
}

fn started(env: &[(&str, &str)]) -> Bridge {
    let mut b = Bridge::start_env(&[], env);
    let r = b.call("initialize", json!({"protocolVersion": "1"}));
    assert_eq!(r["result"]["protocolVersion"], "1", "{r}");
    b
}

/// Stops the daemon a test started (by the pid it recorded), when dropped.
struct DaemonOf(PathBuf);

impl Drop for DaemonOf {
    fn drop(&mut self) {
        let Ok(info) = std::fs::read_to_string(self.0.join("daemon.json")) else { return };
        let pid = serde_json::from_str::<Value>(&info).unwrap()["pid"].as_i64().unwrap();
        // Only the daemon this test's state dir started, by its pid, with the syscall (never a
        // shelled-out `kill`); it leaves its sandboxes, removed below.
        if let Ok(pid) = i32::try_from(pid) {
            if pid > 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }
        }
    }
}

#[test]
fn a_persistent_sandbox_outlives_its_bridge_and_another_bridge_connects_by_id() {
    if !docker_here() {
        eprintln!("SKIPPED: no docker");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap().to_string();
    let _daemon = DaemonOf(state.clone());
    let bin = cli();
    let env = [("DAGGER_SANDBOX_BIN", bin.to_str().unwrap()), ("DAGGER_SANDBOX_STATE_DIR", state_s.as_str())];

    // Bridge 1 creates it through the daemon (starting one), writes, and exits.
    let mut b1 = started(&env);
    let mut cfg = backend_config();
    cfg["persistent"] = json!(true);
    cfg["env"] = json!({"MADE_BY": "bridge-one"});
    let id = b1.ok("sandbox/create", cfg)["sandboxId"].as_str().unwrap().to_string();
    b1.ok("sandbox/writeFile", json!({"sandboxId": id, "path": "note.txt", "content": "from bridge one"}));
    let (status, _) = b1.finish();
    assert_eq!(status, 0);

    // Bridge 2 connects by id: the files and the create env are there.
    let mut b2 = started(&env);
    let r = b2.ok("sandbox/connect", json!({"sandboxId": id}));
    assert_eq!(r["sandboxId"], id.as_str(), "{r}");
    let r = b2.ok("sandbox/exec", json!({"sandboxId": id, "command": "cat note.txt; echo \" $MADE_BY\""}));
    assert_eq!(r["stdout"], "from bridge one bridge-one\n", "{r}");
    // Stop and resume go through the daemon; a closed handle leaves the sandbox.
    assert_eq!(b2.ok("sandbox/stop", json!({"sandboxId": id}))["stopped"], true);
    let r = b2.call("sandbox/exec", json!({"sandboxId": id, "command": "true"}));
    assert_eq!(r["error"]["data"]["code"], "STOPPED", "{r}");
    b2.ok("sandbox/resume", json!({"sandboxId": id}));
    b2.ok("sandbox/close", json!({"sandboxId": id}));
    let (status, _) = b2.finish();
    assert_eq!(status, 0);
    assert_eq!(managed_containers(std::slice::from_ref(&id)), 1, "closing a connected handle keeps the sandbox");

    // Unknown ids and bad params are typed errors.
    let mut b3 = started(&env);
    let r = b3.call("sandbox/connect", json!({"sandboxId": "sbx-000000000000"}));
    assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "{r}");
    let r = b3.call("sandbox/create", json!({"persistent": "yes"}));
    assert_eq!(code(&r), -32602, "{r}");
    let r = b3.call("sandbox/create", json!({"persistent": true, "ports": [8080]}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_ARGUMENT", "{r}");
    // `delete: true` deletes it for good.
    b3.ok("sandbox/connect", json!({"sandboxId": id}));
    b3.ok("sandbox/close", json!({"sandboxId": id, "delete": true}));
    let (status, _) = b3.finish();
    assert_eq!(status, 0);
    assert_eq!(managed_containers(&[id]), 0, "delete removed the container");
}

//! The harness every end-to-end test of the `dagger-sandbox` binary shares: a private state dir per
//! test, the real binary, the real Docker engine, and a cleanup that runs even when a test fails
//! (the daemon is signalled by pid, its labelled containers removed).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The busybox test image (built locally, never pulled).
pub const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";
/// The Node test image (built locally, never pulled).
pub const NODE: &str = "dagger-sandbox-test/node:latest";
/// The label naming the owner of an engine resource.
pub const OWNER_LABEL: &str = "dev.dagger-sandbox.owner";

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dagger-sandbox")
}

/// Whether the Docker engine and the test images are here. With `DAGGER_SANDBOX_REQUIRE_DOCKER=1`
/// their absence fails the test instead of skipping it.
pub fn docker_ready(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", BUSYBOX, NODE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or the test images ({BUSYBOX}, {NODE}) are missing");
        }
        eprintln!("SKIPPED {test}: no Docker engine or test images (run scripts/engine.sh)");
    }
    ok
}

/// One test's world: its state dir, its daemon (started by the CLI), its containers.
pub struct Harness {
    dir: tempfile::TempDir,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh, empty state dir.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("dsb-cli-").tempdir().expect("temp state dir");
        Harness { dir }
    }

    /// The state dir.
    pub fn state(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with this state dir and a clean environment for the things it reads.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--state-dir").arg(self.state());
        c.env_remove("DAGGER_SANDBOX_STATE_DIR").env_remove("RUST_LOG");
        // Dependency caches: the tests' own set (volumes of the `tests` namespace, local ones in
        // the state dir), never the caches of the user running them.
        c.env("DAGGER_SANDBOX_CACHE_NAMESPACE", "tests").env("XDG_CACHE_HOME", self.state().join("cache"));
        c.stdin(Stdio::null());
        c
    }

    /// Runs the binary with `args` to completion (bounded at 3 minutes, then killed).
    pub fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd().args(args), Duration::from_secs(180))
    }

    /// Runs the binary, asserts it succeeded, and parses its stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", describe(&out)))
    }

    /// The daemon this state dir's `daemon.json` names, if it is a process we started.
    pub fn daemon_pid(&self) -> Option<u32> {
        let info: Value = serde_json::from_slice(&std::fs::read(self.state().join("daemon.json")).ok()?).ok()?;
        let pid = u32::try_from(info.get("pid")?.as_u64()?).ok()?;
        // Only ever signal a process that is a daemon of this very state dir.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let ours = cmdline.contains("serve") && cmdline.contains(&*self.state().to_string_lossy());
        ours.then_some(pid)
    }

    /// The daemon's address from `daemon.json`.
    pub fn daemon_addr(&self) -> String {
        let info: Value = serde_json::from_slice(&std::fs::read(self.state().join("daemon.json")).unwrap()).unwrap();
        info["addr"].as_str().unwrap().to_string()
    }

    /// Sends `sig` to the daemon and waits (bounded) until it is gone.
    pub fn signal_daemon(&self, sig: Signal) -> bool {
        let Some(pid) = self.daemon_pid() else { return false };
        let _ = kill(Pid::from_raw(pid as i32), sig);
        wait_gone(pid, Duration::from_secs(15))
    }

    /// Whether an owner label value names this state dir's daemon.
    pub fn owns(&self, owner: &str) -> bool {
        owned_by(owner, self.state())
    }

    /// Ids of every container (running or not) owned by this state dir's daemon.
    pub fn containers(&self) -> Vec<String> {
        owned_containers(self.state())
    }

    /// Writes a file under a fresh project dir inside the state dir's parent temp dir.
    pub fn project(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.state().join("projects").join(name);
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.daemon_pid().is_some() && !self.signal_daemon(Signal::SIGTERM) {
            self.signal_daemon(Signal::SIGKILL);
        }
        let ids = self.containers();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&ids).output();
        }
    }
}

/// Whether an owner label value names the daemon of `state`.
fn owned_by(owner: &str, state: &Path) -> bool {
    let Some(dir) = owner.strip_prefix("daemon:") else { return false };
    let dir = Path::new(dir);
    dir == state || state.canonicalize().is_ok_and(|c| c == dir)
}

/// Ids of the containers labelled as owned by the daemon of `state`.
pub fn owned_containers(state: &Path) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--filter"])
        .arg(format!("label={OWNER_LABEL}"))
        .args(["--format", &format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, owner)| owned_by(owner, state))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Whether the container with this id (full or prefix) still exists in the engine.
pub fn container_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        // A zombie (our grandchild, reparented to init) counts as gone: it no longer serves.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) => {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

/// Runs a command to completion, killing it after `limit` so a hung CLI fails the test instead of
/// hanging the suite.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning the binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // Our own child, by pid: still running after the limit.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    });
    let out = child.wait_with_output().expect("waiting for the binary");
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

/// The exit status and both streams, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` every 100 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

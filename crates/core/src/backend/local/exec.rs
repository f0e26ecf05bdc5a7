//! Commands in a local sandbox: `sh -c` as a host process leading its own process group (and, where
//! the host allows, in a cgroup of its own), with a kill that reaches the whole group, the whole
//! cgroup, and any process that left the group but kept the exec's marker.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

use super::cgroup::{ExecCgroup, SandboxCgroup};

/// The variable that marks every process of one exec, so a kill can find those that left the
/// process group (`setsid`).
const MARKER_VAR: &str = "DAGGER_SANDBOX_EXEC";

/// The variable naming the sandbox on every process it starts, so close can stop them all.
const SANDBOX_VAR: &str = "DAGGER_SANDBOX_ID";

/// PATH for commands when the host has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running host process of a local sandbox.
pub(super) struct LocalExec {
    sandbox: String,
    child: Child,
    pgid: i32,
    marker: String,
    output: mpsc::Receiver<Result<OutputChunk>>,
    /// The command's cgroup: every process it starts is born in it, whatever it does to its group
    /// or environment.
    cgroup: Option<std::sync::Arc<ExecCgroup>>,
}

impl LocalExec {
    /// Starts `sh -c command` in the sandbox directory with only the sandbox's env (plus PATH, HOME,
    /// TMPDIR and LANG pointing inside it): host variables are not leaked in.
    pub(super) fn start(
        sandbox: &str,
        root: &Path,
        handle: &cap_std::fs::Dir,
        sandbox_cgroup: Option<&SandboxCgroup>,
        spec: ExecSpec,
    ) -> Result<Self> {
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let cgroup = sandbox_cgroup.and_then(|c| c.for_exec(&marker)).map(std::sync::Arc::new);
        // The working directory through the open handle of the sandbox root, not its path: the
        // child changes into it before it runs the command (the handle is still open then), so a
        // directory renamed or swapped on the host since the sandbox was made is never entered.
        let cwd = {
            use std::os::fd::AsRawFd;
            Path::new("/proc/self/fd").join(handle.as_raw_fd().to_string()).join(spec.cwd.relative())
        };
        let mut cmd = tokio::process::Command::new("/bin/sh");
        match &cgroup {
            // The shell moves itself into the cgroup before it runs anything, then becomes the
            // command: no process of the command is ever born outside it (no race with a fork).
            Some(cg) => cmd
                .arg("-c")
                .arg(r#"echo $$ > "$0" 2>/dev/null; exec /bin/sh -c "$1""#)
                .arg(cg.procs())
                .arg(&spec.command),
            None => cmd.arg("-c").arg(&spec.command),
        };
        cmd.current_dir(&cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()))
            .env("HOME", root.join("root"))
            .env("TMPDIR", root.join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("SANDBOX_ROOT", root)
            .envs(&spec.env)
            .env(MARKER_VAR, &marker)
            .env(SANDBOX_VAR, sandbox)
            .process_group(0)
            .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("sandbox {sandbox}: starting /bin/sh in {}", cwd.display()), e))?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if let (Some(data), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await; // EOF for the command
            });
        }
        let (tx, rx) = mpsc::channel(16);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(out, OutputStream::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(err, OutputStream::Stderr, tx));
        }
        Ok(LocalExec { sandbox: sandbox.to_string(), child, pgid, marker, output: rx, cgroup })
    }
}

/// Forwards one pipe's bytes as chunks until EOF (every writer, children included, closed it).
async fn pump(mut pipe: impl AsyncRead + Unpin, stream: OutputStream, tx: mpsc::Sender<Result<OutputChunk>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                let chunk = OutputChunk { stream, data: Bytes::copy_from_slice(&buf[..n]) };
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(Error::io(format!("reading {}", stream.as_str()), e))).await;
                return;
            }
        }
    }
}

#[async_trait]
impl RunningExec for LocalExec {
    async fn next_chunk(&mut self) -> Option<Result<OutputChunk>> {
        self.output.recv().await
    }

    fn kill(&self) -> BoxFuture<'static, Result<()>> {
        let (pgid, marker, cgroup) = (self.pgid, self.marker.clone(), self.cgroup.clone());
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(cg) = cgroup {
                    cg.kill();
                }
                kill_tree(pgid, &marker)
            })
            .await;
            Ok(())
        })
    }

    async fn exit_code(&mut self) -> Result<i64> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| Error::io(format!("sandbox {}: waiting for the command", self.sandbox), e))?;
        if let Some(cg) = &self.cgroup {
            cg.remove_if_empty();
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return Ok(128 + sig as i64);
            }
        }
        Ok(status.code().unwrap_or(-1) as i64)
    }
}

impl Drop for LocalExec {
    fn drop(&mut self) {
        // A call that was dropped (a timeout around it) must not leave the command running.
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(cg) = &self.cgroup {
                cg.kill();
            }
            kill_tree(self.pgid, &self.marker);
        }
    }
}

/// Kills an exec's process group and any process that left it but carries its marker. The
/// syscall on the group we created, never `kill -SIG -PGID` through a shell (procps on Debian 12
/// can turn that into kill(-1)); `pgid > 1` guards against ever signalling init or everything.
fn kill_tree(pgid: i32, marker: &str) {
    if pgid > 1 {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
    }
    kill_marked(&format!("{MARKER_VAR}={marker}"));
}

/// Kills every process a sandbox's commands started that is still running.
pub(super) fn kill_sandbox_processes(sandbox: &str) {
    kill_marked(&format!("{SANDBOX_VAR}={sandbox}"));
}

/// Kills processes whose environment holds `needle` (`NAME=value`): they left the process group
/// but carry a marker only our own execs set. A process in the middle of `execve` briefly shows an
/// empty environment, so a live user process with an empty one makes the scan look again shortly
/// (at most ten rounds, 10 ms apart) instead of missing it.
#[cfg(target_os = "linux")]
fn kill_marked(needle: &str) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let me = std::process::id() as i32;
    for _round in 0..10 {
        let mut found = false;
        let mut uncertain = false;
        let Ok(rd) = std::fs::read_dir("/proc") else { return };
        for entry in rd.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pid <= 1 || pid == me {
                continue;
            }
            match std::fs::read(entry.path().join("environ")) {
                Ok(env) if env.is_empty() => uncertain |= is_live_user_process(&entry.path()),
                Ok(env) => {
                    if env.split(|b| *b == 0).any(|var| var == needle.as_bytes()) {
                        found = true;
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                Err(_) => {} // gone, or not ours to read
            }
        }
        if !found && !uncertain {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether `/proc/<pid>` is a running process with a user address space: not a zombie (whose
/// environment is gone for good) and not a kernel thread (a child of kthreadd, pid 2).
#[cfg(target_os = "linux")]
fn is_live_user_process(proc_dir: &std::path::Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else { return false };
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace()).into_iter().flatten();
    let state = fields.next().unwrap_or("Z");
    let ppid = fields.next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(2);
    state != "Z" && state != "X" && ppid != 2 && ppid != 0
}

#[cfg(not(target_os = "linux"))]
fn kill_marked(_needle: &str) {}

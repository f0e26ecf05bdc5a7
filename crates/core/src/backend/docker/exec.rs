//! Commands in a docker sandbox: an attached exec with stdout and stderr kept apart, stdin fed in
//! the background, a kill that reaches every process the command started (`kill`), and a guard
//! that kills the command when its call is dropped (a REST client that went away, a
//! `tokio::time::timeout` around `exec`), since the engine keeps an exec running by itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::describe;
use super::kill::{container_pid, kill_exec, Entry, ExecBook, MARKER_VAR};
use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

type Output = Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The first pause between two looks at the exit code of a command that closed its output.
const FIRST_POLL: Duration = Duration::from_millis(5);
/// The longest pause between two looks: a command that closed its output and runs on costs the
/// engine four inspections a second, not two hundred.
const MAX_POLL: Duration = Duration::from_millis(250);

/// A running exec in a sandbox container.
pub(super) struct DockerExec {
    docker: Docker,
    container: String,
    sandbox: String,
    exec_id: String,
    marker: String,
    output: Output,
    /// Its place among the sandbox's execs (whether a kill may judge orphans as its own).
    entry: Entry,
    /// Set once the command is known to have ended or a kill was started: nothing left to kill.
    done: AtomicBool,
    /// The runtime it was started on, where a dropped exec's kill runs.
    runtime: Option<tokio::runtime::Handle>,
    /// How many times the engine was asked for the exit code (shown by a test, logged at debug).
    pub(super) polls: u64,
}

impl DockerExec {
    /// Creates and starts `sh -c command` attached, feeding stdin when given.
    pub(super) async fn start(
        docker: &Docker,
        container: &str,
        sandbox: &str,
        book: &Arc<ExecBook>,
        spec: ExecSpec,
    ) -> Result<Self> {
        // Entered before the engine is asked, so the recorded start is never after the real one.
        let entry = Entry::enter(book);
        let marker = format!("{MARKER_VAR}={}", uuid::Uuid::new_v4().simple());
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(marker.clone());
        let config = ExecConfig {
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]),
            env: Some(env),
            working_dir: Some(spec.cwd.to_string()),
            attach_stdin: Some(spec.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false), // no TTY: stdout and stderr arrive as separate frames
            ..Default::default()
        };
        let err = |op: &str, e: bollard::errors::Error| Error::engine(sandbox, op, describe(&e));
        let exec = docker.create_exec(container, config).await.map_err(|e| err("creating the exec", e))?;
        let opts = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let started = docker.start_exec(&exec.id, Some(opts)).await.map_err(|e| err("starting the exec", e))?;
        let StartExecResults::Attached { output, mut input } = started else {
            return Err(Error::engine(sandbox, "starting the exec", "the engine detached an attached exec"));
        };
        // Where the engine shares this kernel, learn the shell's pid in the container now: a kill
        // then knows which orphans were created after it even once the shell has exited.
        if let Ok(info) = docker.inspect_exec(&exec.id).await {
            if let Some(pid) = info.pid.filter(|p| *p > 0).and_then(|p| container_pid(p, &spec.command)) {
                entry.set_root(pid);
            }
        }
        if let Some(data) = spec.stdin {
            // In the background: a command may write before it has read all of its input.
            let sandbox = sandbox.to_string();
            tokio::spawn(async move {
                if let Err(e) = input.write_all(&data).await {
                    tracing::debug!(sandbox, "stdin not fully consumed: {e}");
                }
                let _ = input.shutdown().await; // half-close: the command sees EOF
            });
        } else {
            drop(input);
        }
        Ok(DockerExec {
            docker: docker.clone(),
            container: container.to_string(),
            sandbox: sandbox.to_string(),
            exec_id: exec.id,
            marker,
            output,
            entry,
            done: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
            polls: 0,
        })
    }

    /// The future that kills this exec's processes (see `kill`).
    fn kill_future(&self) -> BoxFuture<'static, Result<()>> {
        self.done.store(true, Ordering::SeqCst);
        let judge = self.entry.judge();
        Box::pin(kill_exec(
            self.docker.clone(),
            self.container.clone(),
            self.sandbox.clone(),
            self.marker.clone(),
            judge,
        ))
    }
}

impl Drop for DockerExec {
    fn drop(&mut self) {
        // The call was dropped while the command runs: the engine would run it to its end, past
        // any timeout, so kill it in the background on the runtime it was started on.
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        let kill = self.kill_future();
        let sandbox = self.sandbox.clone();
        match self.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) {
            Some(rt) => {
                tracing::debug!(sandbox, "a running exec was dropped; killing it");
                rt.spawn(async move {
                    if let Err(e) = kill.await {
                        tracing::warn!(sandbox, "killing a dropped exec failed: {e}");
                    }
                });
            }
            None => tracing::warn!(sandbox, "a running exec was dropped off any runtime; it is left to its end"),
        }
    }
}

#[async_trait]
impl RunningExec for DockerExec {
    async fn next_chunk(&mut self) -> Option<Result<OutputChunk>> {
        loop {
            return match self.output.next().await? {
                Ok(LogOutput::StdOut { message }) => {
                    Some(Ok(OutputChunk { stream: OutputStream::Stdout, data: message }))
                }
                Ok(LogOutput::StdErr { message }) => {
                    Some(Ok(OutputChunk { stream: OutputStream::Stderr, data: message }))
                }
                Ok(_) => continue, // console/stdin frames only exist with a TTY
                Err(e) => Some(Err(Error::engine(&self.sandbox, "reading exec output", describe(&e)))),
            };
        }
    }

    fn kill(&self) -> BoxFuture<'static, Result<()>> {
        self.kill_future()
    }

    async fn exit_code(&mut self) -> Result<i64> {
        // The code lands a moment after the output closes; a command that closed its output early
        // keeps running, and the caller's deadline bounds this wait. Looks back off from 5 ms to
        // 250 ms: quick for the usual case, cheap for a command that sleeps on.
        let mut pause = FIRST_POLL;
        loop {
            self.polls += 1;
            let info = self
                .docker
                .inspect_exec(&self.exec_id)
                .await
                .map_err(|e| Error::engine(&self.sandbox, "inspecting the exec", describe(&e)))?;
            if info.running != Some(true) {
                self.done.store(true, Ordering::SeqCst);
                tracing::debug!(sandbox = self.sandbox, polls = self.polls, "exit code known");
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bollard::models::{ContainerCreateBody, HostConfig};

    use super::*;
    use crate::paths::SandboxPath;

    const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";

    /// A container of the test image, removed when dropped (even when the test fails).
    struct Scratch(String);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }

    /// Counts how often the engine is asked for the exit code of a command that closed its
    /// output and sleeps 3 s: it backs off from 5 ms to 250 ms instead of asking every 5 ms
    /// (about 500 looks before the back-off, by the 170 per second).
    #[tokio::test]
    async fn a_command_that_closed_its_output_is_polled_with_back_off() {
        let Ok(docker) = Docker::connect_with_defaults() else { return };
        if docker.inspect_image(BUSYBOX).await.is_err() {
            eprintln!("SKIPPED: no Docker engine or no {BUSYBOX} (run scripts/engine.sh)");
            return;
        }
        let body = ContainerCreateBody {
            image: Some(BUSYBOX.into()),
            entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
            host_config: Some(HostConfig { init: Some(true), network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        let created =
            docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await.unwrap();
        let scratch = Scratch(created.id.clone());
        docker.start_container(&scratch.0, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
        let spec = ExecSpec {
            command: "sleep 3".into(),
            env: BTreeMap::new(),
            cwd: SandboxPath::root(),
            stdin: None,
            timeout: Duration::from_secs(30),
            output_cap: 1024,
        };
        let book = Arc::new(ExecBook::default());
        let mut run = DockerExec::start(&docker, &scratch.0, "sbx-polls", &book, spec).await.unwrap();
        // Asked at once, as `drive` does once the output ended while the command runs on.
        let started = std::time::Instant::now();
        let code = run.exit_code().await.unwrap();
        let waited = started.elapsed();
        println!(
            "exit-code looks for a command that closed its output and slept 3 s: {} in {:.2} s ({:.1} per second)",
            run.polls,
            waited.as_secs_f64(),
            run.polls as f64 / waited.as_secs_f64()
        );
        assert_eq!(code, 0);
        // 5, 10, 20, 40, 80, 160 ms, then one look every 250 ms: about 18 over 3 s.
        assert!(run.polls < 40, "{} looks", run.polls);
    }
}

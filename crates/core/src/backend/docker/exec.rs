//! Commands in a docker sandbox: an attached exec with stdout and stderr kept apart, stdin fed in
//! the background, and a kill that reaches every process the command started.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{describe, wait_exit_code};
use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

type Output = Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The name of the variable that marks every process of one exec, so a kill can find them all.
const MARKER_VAR: &str = "DAGGER_SANDBOX_EXEC";

/// A running exec in a sandbox container.
pub(super) struct DockerExec {
    docker: Docker,
    container: String,
    sandbox: String,
    exec_id: String,
    marker: String,
    output: Output,
}

impl DockerExec {
    /// Creates and starts `sh -c command` attached, feeding stdin when given.
    pub(super) async fn start(docker: &Docker, container: &str, sandbox: &str, spec: ExecSpec) -> Result<Self> {
        let marker = format!("{MARKER_VAR}={}", uuid::Uuid::new_v4().simple());
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(marker.clone());
        let config = ExecConfig {
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), spec.command]),
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
        })
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
        // Docker has no endpoint to kill an exec, and hanging up does not stop it. A second exec
        // finds every process carrying this exec's marker, stops them all first (so no parent sees
        // a child die and carries on), re-scans for late forks, then kills them.
        let script = format!(
            "all=''; for round in 1 2 3; do new=''; \
             for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ \"$p\" = \"$$\" ] && continue; \
             case \" $all \" in *\" $p \"*) continue;; esac; \
             if tr '\\000' '\\n' < \"$d/environ\" 2>/dev/null | grep -qxF '{marker}'; then new=\"$new $p\"; fi; \
             done; [ -z \"$new\" ] && break; kill -STOP $new 2>/dev/null; all=\"$all $new\"; done; \
             [ -n \"$all\" ] && kill -KILL $all 2>/dev/null; true",
            marker = self.marker
        );
        let (docker, container, sandbox) = (self.docker.clone(), self.container.clone(), self.sandbox.clone());
        Box::pin(async move {
            let config = ExecConfig {
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            };
            let err = |e: bollard::errors::Error| Error::engine(&sandbox, "killing a command", describe(&e));
            let exec = docker.create_exec(&container, config).await.map_err(err)?;
            if let StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&exec.id, None).await.map_err(err)?
            {
                while output.next().await.is_some() {}
            }
            Ok(())
        })
    }

    async fn exit_code(&mut self) -> Result<i64> {
        // The code lands a moment after the output closes; a command that closed its output early
        // keeps running, and the caller's deadline bounds this wait.
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(code) = wait_exit_code(&self.docker, &self.exec_id)
                .await
                .map_err(|e| Error::engine(&self.sandbox, "inspecting the exec", describe(&e)))?
            {
                return Ok(code);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

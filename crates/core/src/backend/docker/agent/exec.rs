//! Commands through the agent: started in a process group of their own, output streamed back
//! under the window, killed (group and marked processes) by a cancel frame; when the agent is
//! gone, the kill falls back to the Engine API's marker kill.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use dagger_sandbox_agent::{ErrorKind, Kind, Reply, Request};
use futures_util::future::BoxFuture;

use super::link::{Call, Canceller, Incoming, Link};
use super::{said, QUICK};
use crate::backend::docker::kill::{kill_exec, MARKER_VAR};
use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

/// A command running through the agent.
pub(crate) struct AgentExec {
    call: Call,
    canceller: Canceller,
    sandbox: String,
    docker: Docker,
    container: String,
    marker: String,
    /// Whether stdout and stderr are still open.
    open: [bool; 2],
    exit: Option<i64>,
    /// Set once it ended or a kill was sent: nothing left to kill on drop.
    done: AtomicBool,
    runtime: Option<tokio::runtime::Handle>,
}

impl AgentExec {
    /// Starts `sh -c command` with the spec's env, cwd and stdin.
    pub(crate) async fn start(
        link: &Arc<Link>,
        docker: &Docker,
        container: &str,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<AgentExec> {
        let value = uuid::Uuid::new_v4().simple().to_string();
        let marker = format!("{MARKER_VAR}={value}");
        let mut env: Vec<(String, String)> = spec.env.into_iter().collect();
        env.push((MARKER_VAR.to_string(), value));
        let request = Request::Exec {
            argv: vec!["/bin/sh".into(), "-c".into(), spec.command],
            env,
            cwd: spec.cwd.to_string(),
            stdin: spec.stdin.is_some(),
            marker: marker.clone(),
        };
        let mut call = link.call(&request)?;
        if let Some(data) = spec.stdin {
            // In the background: a command may write before it has read all of its input.
            let feeder = call.feeder();
            tokio::spawn(async move { feeder.feed(&data).await });
        }
        match call.next_within("starting a command", QUICK).await? {
            Incoming::Reply(Reply::Started { .. }) => {}
            Incoming::Reply(Reply::Error { kind: ErrorKind::NotFound, .. }) => {
                return Err(Error::not_found(sandbox, "working directory", spec.cwd.to_string()))
            }
            Incoming::Reply(Reply::Error { message, .. }) => {
                return Err(Error::engine(sandbox, "starting a command", said(&message)))
            }
            other => return Err(call.link().unexpected("starting a command", &other)),
        }
        Ok(AgentExec {
            canceller: call.canceller(),
            call,
            sandbox: sandbox.to_string(),
            docker: docker.clone(),
            container: container.to_string(),
            marker,
            open: [true, true],
            exit: None,
            done: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    fn kill_future(&self) -> BoxFuture<'static, Result<()>> {
        self.done.store(true, Ordering::SeqCst);
        let canceller = self.canceller.clone();
        let (docker, container, sandbox, marker) =
            (self.docker.clone(), self.container.clone(), self.sandbox.clone(), self.marker.clone());
        Box::pin(async move {
            if canceller.cancel() {
                return Ok(());
            }
            // The agent is gone: find the command's processes by their marker instead.
            kill_exec(docker, container, sandbox, marker, None).await
        })
    }
}

impl Drop for AgentExec {
    fn drop(&mut self) {
        // Dropped while it runs (a caller that went away): it must not run on past its timeout.
        if self.done.load(Ordering::SeqCst) || self.exit.is_some() {
            return;
        }
        let kill = self.kill_future();
        let sandbox = self.sandbox.clone();
        if let Some(rt) = self.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) {
            rt.spawn(async move {
                if let Err(e) = kill.await {
                    tracing::warn!(sandbox, "killing a dropped exec failed: {e}");
                }
            });
        }
    }
}

#[async_trait]
impl RunningExec for AgentExec {
    async fn next_chunk(&mut self) -> Option<Result<OutputChunk>> {
        loop {
            if self.exit.is_some() || self.open == [false, false] {
                return None;
            }
            let got = match self.call.next("reading command output").await {
                Ok(got) => got,
                Err(e) => return Some(Err(e)),
            };
            let stream = match got {
                Incoming::Data(Kind::Stdout, data) => (OutputStream::Stdout, data),
                Incoming::Data(Kind::Stderr, data) => (OutputStream::Stderr, data),
                Incoming::Eof(Kind::Stdout) => {
                    self.open[0] = false;
                    continue;
                }
                Incoming::Eof(Kind::Stderr) => {
                    self.open[1] = false;
                    continue;
                }
                Incoming::Reply(Reply::Exit { code }) => {
                    self.done.store(true, Ordering::SeqCst);
                    self.exit = Some(code);
                    return None;
                }
                Incoming::Reply(Reply::Error { message, .. }) => {
                    self.done.store(true, Ordering::SeqCst);
                    return Some(Err(Error::engine(&self.sandbox, "running a command", said(&message))));
                }
                other => return Some(Err(self.call.link().unexpected("reading command output", &other))),
            };
            return Some(Ok(OutputChunk { stream: stream.0, data: stream.1 }));
        }
    }

    fn kill(&self) -> BoxFuture<'static, Result<()>> {
        self.kill_future()
    }

    async fn exit_code(&mut self) -> Result<i64> {
        loop {
            if let Some(code) = self.exit {
                return Ok(code);
            }
            match self.call.next("waiting for a command's exit").await? {
                Incoming::Reply(Reply::Exit { code }) => {
                    self.done.store(true, Ordering::SeqCst);
                    self.exit = Some(code);
                }
                Incoming::Reply(Reply::Error { message, .. }) => {
                    self.done.store(true, Ordering::SeqCst);
                    return Err(Error::engine(&self.sandbox, "running a command", said(&message)));
                }
                // Output after its end (a late frame) is dropped, as the engine drops it too.
                Incoming::Data(..) | Incoming::Eof(_) => {}
                other => return Err(self.call.link().unexpected("waiting for a command's exit", &other)),
            }
        }
    }
}

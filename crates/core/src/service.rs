//! Long-running processes with forwarded ports (`Sandbox::serve`): a dev server a person or a test
//! reaches on 127.0.0.1, started from the sandbox's current state and stopped on demand.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::PortMapping;
use crate::error::{Error, Result};
use crate::exec::{ExecOptions, ExecResult, OutputChunk, OutputStream};
use crate::sandbox::Sandbox;

/// How long `serve` waits for every port to accept connections by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A service runs until stopped; this stands in for "no timeout" in the exec machinery.
const SERVICE_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How much of each stream `serve` keeps to explain a service that died or never got ready.
const TAIL_BYTES: usize = 4096;

/// Options of [`Sandbox::serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub(crate) ready_timeout: Duration,
    pub(crate) output: Option<mpsc::Sender<OutputChunk>>,
    pub(crate) env: BTreeMap<String, String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { ready_timeout: DEFAULT_READY_TIMEOUT, output: None, env: BTreeMap::new() }
    }
}

impl ServeOptions {
    /// Defaults: 60 s to get ready, output dropped, the sandbox's env.
    pub fn new() -> Self {
        Self::default()
    }
    /// How long every port may take to accept connections before `serve` gives up (`TIMEOUT`).
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
    /// Where the service's output goes, chunk by chunk, for as long as it runs.
    pub fn output(mut self, tx: mpsc::Sender<OutputChunk>) -> Self {
        self.output = Some(tx);
        self
    }
    /// A variable for this service only.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

/// How a service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The process exited by itself with this code.
    Exited(i64),
    /// It was stopped, or the sandbox closed, or the engine failed.
    Stopped,
}

/// A running service. Cheap to clone; dropping every handle does not stop it (the sandbox's close
/// does).
#[derive(Clone)]
pub struct Service {
    stop: CancellationToken,
    end: watch::Receiver<Option<End>>,
    ports: Vec<PortMapping>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("ports", &self.ports).field("ended", &*self.end.borrow()).finish()
    }
}

impl Service {
    /// Where the service's ports are reachable on the host.
    pub fn ports(&self) -> &[PortMapping] {
        &self.ports
    }

    /// Whether the process has ended (by itself or stopped).
    pub fn ended(&self) -> bool {
        self.end.borrow().is_some()
    }

    /// The exit code, once the process has exited by itself; `None` while it runs or after a stop.
    pub fn exit_code(&self) -> Option<i64> {
        match *self.end.borrow() {
            Some(End::Exited(code)) => Some(code),
            _ => None,
        }
    }

    /// Waits until the process ends; its exit code when it exited by itself.
    pub async fn wait(&self) -> Option<i64> {
        let mut end = self.end.clone();
        // The sender lives in the task that runs the process; it always sends before it goes.
        let _ = end.wait_for(Option::is_some).await;
        self.exit_code()
    }

    /// Stops the process (its whole process tree) and waits until it is gone. Idempotent.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.wait().await;
    }
}

/// Keeps the head of nothing and the last `TAIL_BYTES` of each stream.
#[derive(Default)]
struct Tail {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &OutputChunk) {
        let buf = match chunk.stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(&chunk.data);
        if buf.len() > TAIL_BYTES {
            buf.drain(..buf.len() - TAIL_BYTES);
        }
    }

    fn result(&self, exit_code: i64, started: Instant) -> ExecResult {
        ExecResult {
            exit_code,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            duration_ms: started.elapsed().as_millis() as u64,
            truncated: false,
            stdout_dropped: 0,
            stderr_dropped: 0,
        }
    }
}

impl Sandbox {
    /// Runs `command` (`sh -c`, in the workdir, with the env, no timeout) in the background and
    /// waits until every port of the config accepts connections on the host. When the process
    /// exits first, or `ready_timeout` passes, it is killed and the error carries its output tail.
    pub async fn serve(&self, command: &str, opts: ServeOptions) -> Result<Service> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.check_running()?;
        if command.trim().is_empty() {
            return Err(Error::InvalidArgument("a service needs a command".into()));
        }
        if opts.ready_timeout.is_zero() {
            return Err(Error::InvalidArgument("readyTimeout must be greater than 0".into()));
        }
        let started = Instant::now();
        let ports = self.ports();
        let stop = CancellationToken::new();
        let (end_tx, end) = watch::channel(None);
        let tail = Arc::new(Mutex::new(Tail::default()));
        let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
        let forward = opts.output;
        let tail_w = tail.clone();
        // Keeps a tail for error messages and passes every chunk on; a receiver that went away
        // must not stop the service.
        tokio::spawn(async move {
            let mut forward = forward;
            while let Some(chunk) = rx.recv().await {
                tail_w.lock().unwrap_or_else(|p| p.into_inner()).push(&chunk);
                if let Some(f) = &forward {
                    if f.send(chunk).await.is_err() {
                        forward = None;
                    }
                }
            }
        });
        let mut exec_opts = ExecOptions::new().timeout(SERVICE_LIFETIME).output(tx).cancel(stop.clone());
        for (k, v) in opts.env {
            exec_opts = exec_opts.env(k, v);
        }
        let sb = self.clone();
        let cmd = command.to_string();
        tokio::spawn(async move {
            let r = sb.exec(&cmd, exec_opts).await;
            let end = match &r {
                Ok(res) => End::Exited(res.exit_code),
                Err(e) => {
                    tracing::debug!(sandbox = %sb.id(), "service ended: {e}");
                    End::Stopped
                }
            };
            let _ = end_tx.send(Some(end));
        });
        let service = Service { stop, end, ports };
        let deadline = started + opts.ready_timeout;
        let mut pending: Vec<PortMapping> = service.ports.clone();
        while !pending.is_empty() {
            if let Some(end) = *service.end.borrow() {
                let code = match end {
                    End::Exited(c) => c,
                    End::Stopped => -1,
                };
                if self.is_closed() {
                    return Err(self.closed_error());
                }
                let t = tail.lock().unwrap_or_else(|p| p.into_inner()).result(code, started);
                return Err(Error::engine(
                    self.id(),
                    format!("serving {command:?}"),
                    format!(
                        "the service ended (exit code {code}) before port {} accepted connections; stderr tail: {}",
                        pending[0].container_port,
                        t.stderr.trim_end()
                    ),
                ));
            }
            if Instant::now() >= deadline {
                service.stop().await;
                let t = tail.lock().unwrap_or_else(|p| p.into_inner()).result(-1, started);
                return Err(Error::Timeout {
                    sandbox: self.id().to_string(),
                    command: format!(
                        "{command} (waiting for port {} to accept connections)",
                        pending[0].container_port
                    ),
                    timeout_ms: opts.ready_timeout.as_millis() as u64,
                    partial: Box::new(t),
                });
            }
            let mut still = Vec::new();
            for p in pending {
                if !accepts(p.host_port).await {
                    still.push(p);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tracing::info!(sandbox = %self.id(), command, ports = ?service.ports, "service ready");
        Ok(service)
    }
}

/// Whether something serves `port` on 127.0.0.1. A TCP connect alone proves nothing: Docker's
/// userland proxy accepts on the host port even when nothing listens in the container, then
/// closes at once. So a connection that is closed within a short grace period does not count.
pub(crate) async fn accepts(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_millis(500), connect).await else {
        return false;
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(150), stream.read(&mut byte)).await {
        // Still open and quiet (an HTTP server waiting for a request), or it spoke first.
        Err(_) | Ok(Ok(1..)) => true,
        // Closed or reset by the proxy: nothing behind it yet.
        Ok(Ok(0)) | Ok(Err(_)) => false,
    }
}

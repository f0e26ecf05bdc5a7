//! The sandboxes and background commands an MCP server holds, shared by its connections; each
//! sandbox belongs to the connection (scope) that made it and is closed when that connection ends,
//! unless the daemon keeps it as a session with a ttl (the [`Keeper`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dagger_sandbox::{BackendChoice, CancellationToken, OutputChunk, Sandbox, Service};
use tokio::sync::mpsc;

use crate::error::ToolError;
use crate::logring::{LogLine, LogRing};
use crate::roots::Roots;

/// What a sandbox kept by the daemon is made from (the REST create request's fields).
#[derive(Debug, Clone, Default)]
pub struct KeepSpec {
    /// The image.
    pub image: Option<String>,
    /// A template name.
    pub template: Option<String>,
    /// `auto`, `docker`, `dagger` or `local`.
    pub backend: Option<String>,
    /// Environment for every exec and the service.
    pub env: BTreeMap<String, String>,
    /// Container ports forwarded to 127.0.0.1 (needs `command`).
    pub ports: Vec<u16>,
    /// The service command.
    pub command: Option<String>,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
}

/// The daemon's session registry as the MCP server sees it: sandboxes that outlive a connection
/// (made with a ttl), reaped by the daemon when their ttl passes. Only the daemon has one.
#[async_trait::async_trait]
pub trait Keeper: Send + Sync {
    /// Creates a daemon session and returns its sandbox.
    async fn create(&self, spec: KeepSpec) -> Result<Sandbox, ToolError>;
    /// The sandbox of a live session.
    fn get(&self, id: &str) -> Option<Sandbox>;
    /// The live sessions' sandboxes.
    fn list(&self) -> Vec<Sandbox>;
    /// Stops a session; `false` when there is none.
    async fn close(&self, id: &str) -> Result<bool, ToolError>;
    /// A session's service log lines with `seq >= since` (at most the last `tail`) and the next
    /// cursor, or `None` when it has no log.
    fn logs(&self, id: &str, since: u64, tail: usize) -> Option<(Vec<LogLine>, u64)>;
}

/// The server-wide settings: defaults for new sandboxes and the host directories tools may touch.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// The image of a sandbox created without one (`--image`).
    pub image: String,
    /// The backend of new sandboxes (`--backend`).
    pub backend: BackendChoice,
    /// Host directories import, export and validate may touch besides the client's roots.
    pub roots: Roots,
    /// The owner label of the sandboxes (the daemon's own); `None`: this process (`pid@boot-id`),
    /// so `cleanup_orphans` removes what a killed server left behind and nothing of a live one.
    pub owner: Option<String>,
}

/// Environment variable with the default image (`--image`).
pub const ENV_IMAGE: &str = "DAGGER_SANDBOX_MCP_IMAGE";
/// Environment variable with the backend (`--backend`).
pub const ENV_BACKEND: &str = "DAGGER_SANDBOX_MCP_BACKEND";
/// Environment variable with `:`-separated root directories (`--root`).
pub const ENV_ROOTS: &str = "DAGGER_SANDBOX_MCP_ROOTS";

impl McpOptions {
    /// Options from `DAGGER_SANDBOX_MCP_IMAGE`, `DAGGER_SANDBOX_MCP_BACKEND` and
    /// `DAGGER_SANDBOX_MCP_ROOTS` (`:`-separated), defaults for the ones not set.
    pub fn from_env() -> Result<McpOptions, ToolError> {
        let mut o = McpOptions::default();
        if let Some(image) = std::env::var(ENV_IMAGE).ok().filter(|s| !s.is_empty()) {
            o.image = image;
        }
        if let Some(b) = std::env::var(ENV_BACKEND).ok().filter(|s| !s.is_empty()) {
            o.backend =
                b.parse().map_err(|e: dagger_sandbox::Error| ToolError::invalid(format!("{ENV_BACKEND}: {e}")))?;
        }
        if let Some(roots) = std::env::var_os(ENV_ROOTS) {
            let dirs: Vec<std::path::PathBuf> =
                std::env::split_paths(&roots).filter(|p| !p.as_os_str().is_empty()).collect();
            o.roots = Roots::from_dirs(&dirs).map_err(|e| ToolError::invalid(format!("{ENV_ROOTS}: {e}")))?;
        }
        Ok(o)
    }
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            image: dagger_sandbox::DEFAULT_IMAGE.to_string(),
            backend: BackendChoice::Auto,
            roots: Roots::default(),
            owner: None,
        }
    }
}

/// A sandbox a connection made.
pub struct Held {
    /// The sandbox.
    pub sandbox: Sandbox,
    scope: u64,
    service: Mutex<Option<Service>>,
    /// Its service's output.
    pub logs: Arc<LogRing>,
}

/// A command running in the background.
pub struct Job {
    /// The sandbox it runs in.
    pub sandbox: String,
    /// The command.
    pub command: String,
    /// Its output.
    pub logs: LogRing,
    /// How it ended, once it has.
    pub end: Mutex<Option<JobEnd>>,
    /// Stops it.
    pub cancel: CancellationToken,
    /// When it started.
    pub started: Instant,
    scope: u64,
}

/// How a background command ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// Its exit code (`-1` when it was killed).
    pub exit_code: i64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Why it could not finish (timeout, cancelled, sandbox failure).
    pub error: Option<ToolError>,
}

/// The scope of what stateless (2026-07-28) HTTP requests make: they have no connection, so any
/// request with the token may use it, and each sandbox closes after [`SHARED_TTL`].
pub const SHARED_SCOPE: u64 = 0;
/// How long a sandbox made by a stateless request lives (closed then; a daemon restart removes
/// any left as orphans).
pub const SHARED_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shared state of one MCP server.
pub struct Hub {
    /// Its settings.
    pub options: McpOptions,
    /// The daemon's registry, when served by the daemon.
    pub keeper: Option<Arc<dyn Keeper>>,
    held: Mutex<HashMap<String, Arc<Held>>>,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A hub with `options`, and the daemon's `keeper` when there is one.
    pub fn new(options: McpOptions, keeper: Option<Arc<dyn Keeper>>) -> Arc<Hub> {
        Arc::new(Hub {
            options,
            keeper,
            held: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    /// A new connection's scope; its sandboxes close when it ends (or is dropped).
    pub fn scope(self: &Arc<Self>) -> Arc<Scope> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        Arc::new(Scope { id, hub: self.clone(), closed: AtomicBool::new(false) })
    }

    /// Registers a sandbox made by `scope` (or by a stateless request: [`SHARED_SCOPE`], closed
    /// after [`SHARED_TTL`]), with its service, and returns it.
    pub fn hold(
        self: &Arc<Self>,
        scope: u64,
        sandbox: Sandbox,
        service: Option<Service>,
        logs: Arc<LogRing>,
    ) -> Arc<Held> {
        let held = Arc::new(Held { sandbox, scope, service: Mutex::new(service), logs });
        let id = held.sandbox.id().to_string();
        lock(&self.held).insert(id.clone(), held.clone());
        if scope == SHARED_SCOPE {
            let hub = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(SHARED_TTL).await;
                if let Some(hub) = hub.upgrade() {
                    let _ = hub.close(SHARED_SCOPE, &id).await;
                }
            });
        }
        held
    }

    /// Whether `scope` may use what `owner` made: its own, and what stateless requests made.
    fn reaches(scope: u64, owner: u64) -> bool {
        owner == scope || owner == SHARED_SCOPE
    }

    /// The sandbox `id` as `scope` may use it: its own, a stateless request's, or one the daemon keeps.
    pub fn sandbox(&self, scope: u64, id: &str) -> Result<Sandbox, ToolError> {
        if let Some(h) = self.held(scope, id) {
            return Ok(h.sandbox.clone());
        }
        self.keeper.as_ref().and_then(|k| k.get(id)).ok_or_else(|| ToolError::no_sandbox(id))
    }

    /// The sandbox `id` if the hub holds it for `scope` (not kept by the daemon).
    pub fn held(&self, scope: u64, id: &str) -> Option<Arc<Held>> {
        lock(&self.held).get(id).filter(|h| Self::reaches(scope, h.scope)).cloned()
    }

    /// The sandboxes `scope` may use (`true`: kept by the daemon).
    pub fn list(&self, scope: u64) -> Vec<(Sandbox, bool)> {
        let mut out: Vec<(Sandbox, bool)> = lock(&self.held)
            .values()
            .filter(|h| Self::reaches(scope, h.scope))
            .map(|h| (h.sandbox.clone(), false))
            .collect();
        if let Some(k) = &self.keeper {
            out.extend(k.list().into_iter().map(|s| (s, true)));
        }
        out.sort_by(|a, b| a.0.id().cmp(b.0.id()));
        out
    }

    /// Closes a sandbox `scope` may use: stops its background commands and service, removes it.
    pub async fn close(&self, scope: u64, id: &str) -> Result<(), ToolError> {
        let held = {
            let mut map = lock(&self.held);
            match map.get(id) {
                Some(h) if Self::reaches(scope, h.scope) => map.remove(id),
                _ => None,
            }
        };
        self.stop_jobs(|j| j.sandbox == id);
        match held {
            Some(h) => close_held(&h).await,
            None => match &self.keeper {
                Some(k) if k.close(id).await? => Ok(()),
                _ => Err(ToolError::no_sandbox(id)),
            },
        }
    }

    /// Starts `command` in the background and returns its handle; its output goes to the job's
    /// log, and it stops when its sandbox or connection closes.
    pub fn spawn_job(
        self: &Arc<Self>,
        scope: u64,
        sandbox: Sandbox,
        command: String,
        opts: dagger_sandbox::ExecOptions,
    ) -> String {
        let handle = format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let cancel = CancellationToken::new();
        let job = Arc::new(Job {
            sandbox: sandbox.id().to_string(),
            command: command.clone(),
            logs: LogRing::default(),
            end: Mutex::new(None),
            cancel: cancel.clone(),
            started: Instant::now(),
            scope,
        });
        lock(&self.jobs).insert(handle.clone(), job.clone());
        let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
        let opts = opts.output(tx).cancel(cancel);
        tokio::spawn(async move {
            let run = sandbox.exec(&command, opts);
            let collect = async {
                while let Some(chunk) = rx.recv().await {
                    job.logs.push(&chunk);
                }
            };
            let (result, ()) = tokio::join!(run, collect);
            job.logs.flush();
            let end = match result {
                Ok(r) => JobEnd { exit_code: r.exit_code, duration_ms: r.duration_ms, error: None },
                Err(e) => JobEnd {
                    exit_code: -1,
                    duration_ms: job.started.elapsed().as_millis() as u64,
                    error: Some(e.into()),
                },
            };
            *lock(&job.end) = Some(end);
        });
        handle
    }

    /// A background command `scope` started.
    pub fn job(&self, scope: u64, handle: &str) -> Result<Arc<Job>, ToolError> {
        lock(&self.jobs)
            .get(handle)
            .filter(|j| Self::reaches(scope, j.scope))
            .cloned()
            .ok_or_else(|| ToolError::new("NOT_FOUND", format!("no background command {handle:?} on this connection")))
    }

    fn stop_jobs(&self, which: impl Fn(&Job) -> bool) {
        let mut jobs = lock(&self.jobs);
        jobs.retain(|_, j| {
            if which(j) {
                j.cancel.cancel();
                false
            } else {
                true
            }
        });
    }
}

async fn close_held(h: &Held) -> Result<(), ToolError> {
    let service = lock(&h.service).take();
    if let Some(s) = service {
        s.stop().await;
    }
    Ok(h.sandbox.close().await?)
}

/// One connection's share of the hub.
pub struct Scope {
    id: u64,
    hub: Arc<Hub>,
    closed: AtomicBool,
}

impl Scope {
    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Its id in the hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Closes everything this connection made (sandboxes, background commands); idempotent.
    pub async fn close_all(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        close_scope(&self.hub, self.id).await;
    }
}

/// Closes what scope `id` made. A free function, not a method: the task `Scope::drop` spawns holds
/// no `Scope`, whose own drop would spawn again (on a runtime that is shutting down, the task is
/// dropped at once, and that recursed until the stack overflowed).
async fn close_scope(hub: &Hub, id: u64) {
    let mine: Vec<Arc<Held>> = {
        let mut map = lock(&hub.held);
        let ids: Vec<String> = map.iter().filter(|(_, h)| h.scope == id).map(|(k, _)| k.clone()).collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    };
    hub.stop_jobs(|j| j.scope == id);
    for h in mine {
        if let Err(e) = close_held(&h).await {
            tracing::warn!(sandbox = h.sandbox.id(), "closing a connection's sandbox failed: {e}");
        }
    }
}

impl Drop for Scope {
    /// A connection dropped without `close_all` (an HTTP session that ended) still closes its
    /// sandboxes, on the runtime in the background. Should that runtime be shutting down, the task
    /// never runs; the sandboxes' own drop and `cleanup_orphans` free what it would have closed.
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (hub, id) = (self.hub.clone(), self.id);
        rt.spawn(async move { close_scope(&hub, id).await });
    }
}

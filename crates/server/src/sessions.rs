//! The live session registry: the sandboxes this daemon holds (with their service and log), kept
//! in step with the SQLite store, and the one place where sessions are created and stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use dagger_sandbox::inventory::Inventory;
use dagger_sandbox::{
    BackendChoice, BackendKind, ExecOptions, ExecResult, FileReader, OutputChunk, Sandbox, SandboxConfig, Service,
};
use dagger_sandbox_store::{ListFilter, Provider, Session, SessionUpdate, Status, Store};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::logs::{LineSplitter, LogBuffer};
use crate::templates::{Templates, DEFAULT_WORKING_DIRECTORY};
use crate::views::{empty_object, Meta};
pub use crate::views::{CreateRequest, ExecRequest, ExecView, SessionView};

mod detached;
mod engine_watch;
mod pools;
mod secrets;
mod service_output;
mod services;
mod snapshots;
mod suspend;
mod takeback;
use snapshots::check_from_snapshot;
pub use suspend::StopCause;
pub use takeback::TakeBack;

/// Session lifetime when the create request names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Longest lifetime a create or extend may ask for (a year), so expiry times stay representable.
pub const MAX_TTL_SECONDS: u64 = 366 * 24 * 3600;
/// How many ended sessions keep their log in memory for late readers.
const ENDED_LOGS_KEPT: usize = 64;

/// `ended_reason` of a session stopped by `DELETE`.
pub const REASON_STOPPED: &str = "stopped";
/// `ended_reason` of a session the reaper ended.
pub const REASON_EXPIRED: &str = "expired";
/// `ended_reason` of a session whose engine resources vanished or could not be taken back.
pub const REASON_LOST: &str = "lost";
/// `ended_reason` of a session whose service exited or never became ready.
pub const REASON_FAILED: &str = "failed";
/// `ended_reason` of a session whose container was stopped or removed outside the daemon
/// (`docker stop`, `docker rm`, an OOM kill, the engine restarting).
pub const REASON_ENGINE_STOPPED: &str = "engine_stopped";
/// `ended_reason` of a session whose creating client went away before the answer: it is stopped,
/// so a create nobody waits for leaks nothing.
pub const REASON_ABANDONED: &str = "abandoned";

/// A sandbox this daemon holds.
pub struct Live {
    /// The sandbox.
    pub sandbox: Sandbox,
    service: Mutex<Option<Service>>,
    /// Its output log.
    pub logs: Arc<LogBuffer>,
    /// Set once a stop began, so a service that ends because of it is not reported as a failure.
    stopping: AtomicBool,
    /// Stop, resume and the state kept for them (`suspend.rs`).
    pause: suspend::PauseState,
    /// How far the service's output record has been read (`service_output.rs`).
    record: service_output::RecordOffsets,
}

impl Live {
    fn new(sandbox: Sandbox, logs: Arc<LogBuffer>) -> Arc<Self> {
        Arc::new(Live {
            sandbox,
            service: Mutex::new(None),
            logs,
            stopping: AtomicBool::new(false),
            pause: Default::default(),
            record: Default::default(),
        })
    }

    fn service(&self) -> Option<Service> {
        self.service.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Counters of the daemon itself, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sessions created through the API.
    pub created: AtomicU64,
    /// Sessions the reaper ended.
    pub reaped: AtomicU64,
    /// Creates served from a warm pool.
    pub pool_hits: AtomicU64,
}

/// The registry of sessions: the store plus the sandboxes held in memory.
pub struct Sessions {
    store: Store,
    owner: String,
    templates: Templates,
    inventory: Inventory,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Sessions being taken back (`false`) or stopped (`true`) right now, so two callers never
    /// reattach one sandbox twice and a stop is never undone by a take-back.
    retaking: Mutex<HashMap<String, bool>>,
    /// This registry, for work that outlives a call (taking a session back on use).
    me: std::sync::Weak<Sessions>,
    ended_logs: Mutex<VecDeque<(String, Arc<LogBuffer>)>>,
    /// The daemon's own counters.
    pub counters: Counters,
    /// Warm pools per template (`serve --pool`).
    pools: Mutex<Vec<Arc<dagger_sandbox::Pool>>>,
    /// How long a service may take to accept connections.
    ready_timeout: Duration,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn provider_of(kind: BackendKind) -> Provider {
    match kind {
        BackendKind::Dagger => Provider::Dagger,
        BackendKind::Docker => Provider::Docker,
        BackendKind::Local => Provider::Local,
    }
}

fn choice_of(p: Provider) -> BackendChoice {
    match p {
        Provider::Dagger => BackendChoice::Dagger,
        Provider::Docker => BackendChoice::Docker,
        Provider::Local => BackendChoice::Local,
    }
}

fn ttl(seconds: u64) -> Result<chrono::Duration, ApiError> {
    if seconds == 0 || seconds > MAX_TTL_SECONDS {
        return Err(bad(format!("ttlSeconds must be 1-{MAX_TTL_SECONDS}, got {seconds}")));
    }
    Ok(chrono::Duration::seconds(seconds as i64))
}

impl Sessions {
    /// A registry over `store` whose engine resources carry the owner label `owner`.
    pub fn new(store: Store, owner: String, templates: Templates) -> Arc<Self> {
        Arc::new_cyclic(|me| Sessions {
            me: me.clone(),
            store,
            owner,
            templates,
            inventory: Inventory::new(),
            live: Mutex::new(HashMap::new()),
            retaking: Mutex::new(HashMap::new()),
            ended_logs: Mutex::new(VecDeque::new()),
            counters: Counters::default(),
            pools: Mutex::new(Vec::new()),
            ready_timeout: dagger_sandbox::DEFAULT_READY_TIMEOUT,
        })
    }

    /// The owner label value of this daemon's engine resources (`daemon:<state dir>`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The engines' inventory, used to reconcile and to remove resources of sandboxes not held.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Runs a store call off the async threads.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> dagger_sandbox_store::Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::Internal(format!("a registry task failed: {e}")))?
            .map_err(ApiError::from)
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The held sandbox of `id`, if this daemon holds it.
    pub fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live_map().get(id).cloned()
    }

    /// How many sandboxes are held.
    pub fn live_count(&self) -> usize {
        self.live_map().len()
    }

    /// Ids of every sandbox held.
    pub fn live_ids(&self) -> Vec<String> {
        self.live_map().keys().cloned().collect()
    }

    /// Lets go of every held sandbox WITHOUT closing it, so its engine resources outlive the
    /// daemon and the next start takes them back (detached, so dropping the handles frees nothing).
    pub fn detach_all(&self) {
        let all: Vec<_> = self.live_map().drain().collect();
        for (_, live) in all {
            live.logs.end();
            live.sandbox.detach();
        }
    }

    /// The log of `id`: held sessions, and recently ended ones.
    pub fn logs(&self, id: &str) -> Option<Arc<LogBuffer>> {
        if let Some(l) = self.live(id) {
            return Some(l.logs.clone());
        }
        let ended = self.ended_logs.lock().unwrap_or_else(|p| p.into_inner());
        ended.iter().find(|(i, _)| i == id).map(|(_, l)| l.clone())
    }

    /// One session, or `NOT_FOUND`.
    pub async fn get(&self, id: &str) -> Result<Session, ApiError> {
        let key = id.to_string();
        self.db(move |s| s.get(&key)).await?.ok_or_else(|| ApiError::no_session(id))
    }

    /// Sessions, newest first; terminated ones only with `all`.
    pub async fn list(&self, all: bool) -> Result<Vec<Session>, ApiError> {
        self.db(move |s| s.list(&ListFilter { include_terminated: all, ..Default::default() })).await
    }

    /// The held, running sandbox of a session: one stopped for being idle is resumed; one a user
    /// stopped is `STOPPED`; `NOT_FOUND` or `SESSION_ENDED` otherwise.
    pub async fn usable(&self, id: &str) -> Result<Arc<Live>, ApiError> {
        let live = self.held(id).await?;
        self.running(live).await
    }

    /// The held sandbox of a session that is not terminated, running or stopped.
    pub(crate) async fn held(&self, id: &str) -> Result<Arc<Live>, ApiError> {
        if let Some(l) = self.live(id) {
            return Ok(l);
        }
        let s = self.get(id).await?;
        match s.status {
            Status::Terminated => Err(ApiError::SessionEnded {
                id: id.to_string(),
                reason: s.ended_reason.unwrap_or_else(|| "unknown".into()),
            }),
            // Not held but not terminated: a stop is under way (it lets go of the sandbox before it
            // records the end), so the session has ended for every caller...
            _ if takeback::Retaking::is_stopping(self, id) => {
                Err(ApiError::SessionEnded { id: id.to_string(), reason: "stopping".into() })
            }
            // ...or its engine did not answer when the daemon started: try again now.
            _ => match self.me.upgrade() {
                Some(me) => me.take_back_now(&s).await,
                None => Err(ApiError::Internal("the daemon is shutting down".into())),
            },
        }
    }

    /// Records activity on a session, without failing the call that used it.
    async fn touch(&self, id: &str) {
        let key = id.to_string();
        if let Err(e) = self.db(move |s| s.touch(&key, Utc::now())).await {
            tracing::warn!(session = id, "recording activity failed: {e}");
        }
    }

    /// Creates a session: checks the request, creates the sandbox, starts its service and waits
    /// for its ports, then records it. On any failure nothing is left running or recorded. Only
    /// [`Sessions::create`] calls it, from a task no client can drop half-way.
    async fn create_now(self: &Arc<Self>, req: CreateRequest) -> Result<Session, ApiError> {
        check_from_snapshot(&req)?;
        let tpl = match &req.template {
            Some(name) => Some(self.templates.get(name).cloned().ok_or_else(|| {
                bad(format!("unknown template {name:?}; known: {}", self.templates.names().join(", ")))
            })?),
            None => None,
        };
        let backend: BackendChoice = req.backend.as_deref().unwrap_or("auto").parse()?;
        let ttl = ttl(req.ttl_seconds.unwrap_or(DEFAULT_TTL.as_secs()))?;
        let user = match req.metadata {
            None | Some(serde_json::Value::Null) => empty_object(),
            Some(v @ serde_json::Value::Object(_)) => v,
            Some(_) => return Err(bad("metadata must be a JSON object")),
        };
        let command = match req.command.as_deref().map(str::trim) {
            Some("") => return Err(bad("command must not be empty")),
            Some(_) => req.command.clone(),
            None => None,
        };
        let ports = match (&req.ports, &command, &tpl) {
            (Some(p), _, _) => p.clone(),
            (None, Some(_), Some(t)) => t.ports.clone(),
            _ => vec![],
        };
        if !ports.is_empty() && command.is_none() {
            return Err(bad("ports need a command to serve them: add \"command\" (e.g. \"node server.js\")"));
        }
        if let Some(p) = ports.iter().find(|p| **p == 0) {
            return Err(bad(format!("ports must be 1-65535, got {p}")));
        }
        let workdir = req
            .working_directory
            .clone()
            .or_else(|| tpl.as_ref().map(|t| t.working_directory.clone()))
            .unwrap_or_else(|| DEFAULT_WORKING_DIRECTORY.to_string());
        let image = req.image.clone().or_else(|| tpl.as_ref().map(|t| t.image.clone()));
        let mut config =
            SandboxConfig::new().backend(backend).owner(&self.owner).fallback(req.fallback.unwrap_or(false));
        // A snapshot brings its own workdir; one in the request still wins.
        if req.from_snapshot.is_none() || req.working_directory.is_some() {
            config = config.workdir(&workdir);
        }
        if let Some(i) = &image {
            config = config.image(i);
        }
        if let Some(ca) = &req.ca_certificates {
            config = config.ca_certificates(ca.clone());
        }
        if let Some(caches) = &req.caches {
            config = config.caches(caches.clone());
        }
        for (k, v) in &req.env {
            config = config.env(k, v);
        }
        for p in &ports {
            config = config.port(*p);
        }
        if let Some(p) = &req.project_id {
            config = config.label("dev.dagger-sandbox.project", p);
        }

        let sandbox = match &req.from_snapshot {
            Some(reference) => Sandbox::from_snapshot(reference, config.clone()).await?,
            None => self.sandbox_for(&config).await?,
        };
        let logs = Arc::new(LogBuffer::new());
        let live = Live::new(sandbox.clone(), logs.clone());
        // From here on, every failure must close the sandbox.
        let result: Result<Session, ApiError> = async {
            if let Some(cmd) = &command {
                let service = self.start_service(&live, cmd).await?;
                *live.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
            }
            let now = Utc::now();
            let mut s = Session::new(sandbox.id(), provider_of(sandbox.backend()), now, now + ttl);
            let port_maps = sandbox.ports();
            s.user_id = req.user_id.clone();
            s.project_id = req.project_id.clone();
            s.container_id = Some(sandbox.resource_id());
            s.host_url = port_maps.first().map(|p| p.url.clone());
            s.working_directory = sandbox.workdir();
            // Pin the backend it got, so a restarted daemon reattaches to the same kind of engine.
            let mut pinned = config.clone();
            pinned.backend = choice_of(s.provider);
            // What it runs with now (a snapshot's workdir), for a restarted daemon's reattach.
            pinned.workdir = Some(sandbox.workdir());
            // Secrets never reach the database: names only (a reattach reads values back).
            pinned.env.clear();
            let meta = Meta {
                isolation: sandbox.isolation().as_str().to_string(),
                image: sandbox.image().map(str::to_string),
                template: req.template.clone(),
                command: command.clone(),
                ports: port_maps,
                user,
                config: Some(pinned),
                env_names: req.env.keys().cloned().collect(),
                stopped_by: None,
            };
            s.metadata = serde_json::to_value(&meta).map_err(|e| ApiError::Internal(e.to_string()))?;
            self.live_map().insert(s.id.clone(), live.clone());
            let row = s.clone();
            if let Err(e) = self.db(move |st| st.insert(&row)).await {
                self.live_map().remove(&s.id);
                return Err(e);
            }
            Ok(s)
        }
        .await;
        match result {
            Ok(s) => {
                self.counters.created.fetch_add(1, Ordering::Relaxed);
                self.watch_service(&live);
                tracing::info!(session = %s.id, backend = %s.provider, "session created");
                Ok(s)
            }
            Err(e) => {
                live.stopping.store(true, Ordering::SeqCst);
                if let Some(svc) = live.service() {
                    svc.stop().await;
                }
                if let Err(ce) = sandbox.close().await {
                    tracing::warn!(sandbox = %sandbox.id(), "closing a sandbox whose create failed: {ce}");
                }
                Err(e)
            }
        }
    }

    /// Stops a session for real (service stopped, engine resources removed) and marks it
    /// terminated with `reason`. A terminated session is returned unchanged; `None` if unknown.
    pub async fn stop(&self, id: &str, reason: &str) -> Result<Option<Session>, ApiError> {
        // Keeps the periodic retry from taking back a sandbox this stop is removing.
        let _mark = takeback::Retaking::hold_for_stop(self, id);
        let live = self.live_map().remove(id);
        match &live {
            Some(live) => {
                live.stopping.store(true, Ordering::SeqCst);
                if let Some(svc) = live.service() {
                    svc.stop().await;
                }
                if let Err(e) = live.sandbox.close().await {
                    tracing::warn!(session = id, "closing the sandbox failed ({e}); removing its container directly");
                    self.remove_resource(id, Some(&live.sandbox.resource_id()), live.sandbox.backend()).await;
                }
            }
            None => {
                let key = id.to_string();
                let Some(s) = self.db(move |st| st.get(&key)).await? else { return Ok(None) };
                if s.status == Status::Terminated {
                    return Ok(Some(s));
                }
                let kind = match s.provider {
                    Provider::Docker => BackendKind::Docker,
                    Provider::Local => BackendKind::Local,
                    Provider::Dagger => BackendKind::Dagger,
                };
                self.remove_resource(id, s.container_id.as_deref(), kind).await;
            }
        }
        let (key, why) = (id.to_string(), reason.to_string());
        let row = self.db(move |st| st.terminate(&key, &why, Utc::now())).await?;
        if let Some(r) = &row {
            self.scrub_env(r).await?;
        }
        if let Some(live) = live {
            live.logs.system(format!("session ended: {reason}"));
            live.logs.end();
            let mut ended = self.ended_logs.lock().unwrap_or_else(|p| p.into_inner());
            if ended.len() == ENDED_LOGS_KEPT {
                ended.pop_front();
            }
            ended.push_back((id.to_string(), live.logs.clone()));
        }
        tracing::info!(session = id, reason, "session ended");
        Ok(row)
    }

    /// Removes the engine resource of a sandbox this daemon does not hold, when it carries this
    /// daemon's owner label (a container, or a local directory whose owner file names it).
    pub async fn remove_resource(&self, id: &str, resource: Option<&str>, kind: BackendKind) {
        let Some(resource) = resource else { return };
        if kind == BackendKind::Dagger {
            return;
        }
        let found = match self.inventory.find(kind, resource).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(session = id, resource, "cannot look up the resource to remove it: {e}");
                return;
            }
        };
        if found.owner.as_deref() != Some(self.owner.as_str()) || !found.made_here() {
            tracing::warn!(session = id, resource, owner = ?found.owner, "not removing a resource another owner labelled");
            return;
        }
        if let Err(e) = self.inventory.remove(&found).await {
            tracing::warn!(session = id, resource, "removing the resource failed: {e}");
        }
    }

    /// Runs a command through the API, recording it and its output in the session log.
    pub async fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecResult, ApiError> {
        if req.command.trim().is_empty() {
            return Err(bad("command must not be empty"));
        }
        let live = self.usable(id).await?;
        // An exec longer than the idle timeout is not idleness.
        let _busy = live.pause.busy();
        self.touch(id).await;
        let mut opts = ExecOptions::new();
        for (k, v) in req.env {
            opts = opts.env(k, v);
        }
        if let Some(c) = req.cwd {
            opts = opts.cwd(c);
        }
        match req.timeout_ms {
            Some(0) => return Err(bad("timeoutMs must be greater than 0")),
            Some(ms) => opts = opts.timeout(Duration::from_millis(ms)),
            None => {}
        }
        if let Some(s) = req.stdin {
            opts = opts.stdin(s.into_bytes());
        }
        let (tx, mut rx) = mpsc::channel::<OutputChunk>(256);
        let logs = live.logs.clone();
        logs.system(format!("$ {}", req.command));
        let pump = tokio::spawn(async move {
            let mut split = LineSplitter::default();
            while let Some(c) = rx.recv().await {
                split.chunk(&logs, &c);
            }
            split.flush(&logs);
        });
        let r = live.sandbox.exec(&req.command, opts.output(tx)).await;
        let _ = pump.await;
        match &r {
            Ok(res) => live.logs.system(format!("exit code {}", res.exit_code)),
            Err(e) => live.logs.system(format!("failed: {} {e}", e.code())),
        }
        match r {
            Ok(r) => Ok(r),
            Err(e) => Err(self.explain_failure(id, e.into()).await),
        }
    }

    /// Opens a file of a session for streaming, if it is at most `limit` bytes.
    pub async fn open_file(&self, id: &str, path: &str, limit: u64) -> Result<FileReader, ApiError> {
        let live = self.usable(id).await?;
        self.touch(id).await;
        Ok(live.sandbox.open_file_within(path, limit).await?)
    }

    /// Writes a file of a session from a stream; the bytes written.
    pub async fn write_file_from<R>(&self, id: &str, path: &str, data: R, mode: u32) -> Result<u64, ApiError>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let live = self.usable(id).await?;
        self.touch(id).await;
        Ok(live.sandbox.write_file_from(path, data, mode).await?)
    }

    /// Moves a session's expiry to `max(expires_at, now) + ttl_seconds`.
    pub async fn extend(&self, id: &str, ttl_seconds: u64) -> Result<Session, ApiError> {
        let by = ttl(ttl_seconds)?;
        let s = self.get(id).await?;
        if s.status == Status::Terminated {
            return Err(ApiError::SessionEnded { id: id.into(), reason: s.ended_reason.unwrap_or_default() });
        }
        let change = SessionUpdate { expires_at: Some(s.expires_at.max(Utc::now()) + by), ..Default::default() };
        let key = id.to_string();
        self.db(move |st| st.update(&key, &change)).await?.ok_or_else(|| ApiError::no_session(id))
    }

    /// Stops every session that is not terminated; how many were stopped.
    pub async fn stop_all(&self) -> Result<usize, ApiError> {
        let ids: Vec<String> = self.list(false).await?.into_iter().map(|s| s.id).collect();
        let results = futures_util::future::join_all(ids.iter().map(|id| self.stop(id, REASON_STOPPED))).await;
        let mut n = 0;
        for r in results {
            if r?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sessions by status, for `/metrics` and health.
    pub async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, ApiError> {
        self.db(|s| s.count_by_status()).await
    }
}

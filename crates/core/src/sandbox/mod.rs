//! The public sandbox handle: every user-visible rule (paths, restricted paths, env and workdir
//! state, limits, `CLOSED`) is applied here once, on top of whichever engine runs the sandbox.
//! The file operations are in `files.rs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod ca;
mod caches;
mod connected;
mod files;
mod lifecycle;
mod snapshot;

pub use connected::{Owner, OWNER_TOUCH_INTERVAL};
pub use files::READ_FILE_LIMIT;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{self, BackendKind, Engine, EntryKind, ExecSpec, Isolation, PortMapping};
use crate::config::{validate_env, ResolvedConfig, SandboxConfig};
use crate::error::{Error, Result};
use crate::exec::{drive, ExecEnd, ExecOptions, ExecResult, OutputChunk};
use crate::metrics;
use crate::paths::SandboxPath;
use crate::tarball::TarWriter;

/// The mutable part of a sandbox: where relative paths point and what env execs get.
#[derive(Debug, Clone)]
struct State {
    workdir: SandboxPath,
    env: BTreeMap<String, String>,
}

struct Inner {
    id: String,
    engine: Arc<dyn Engine>,
    cfg: ResolvedConfig,
    state: Mutex<State>,
    closing: CancellationToken,
    closed: tokio::sync::Mutex<bool>,
    fallback: Option<String>,
    /// The runtime the sandbox was made on. The last handle may be dropped on a thread with no
    /// runtime (a JS finalizer, a plain thread), and the cleanup must still be started there.
    runtime: Option<tokio::runtime::Handle>,
    /// Set by `detach`: the engine resources are meant to outlive every handle.
    detached: std::sync::atomic::AtomicBool,
    /// What went wrong at create without failing it.
    warnings: Mutex<Vec<String>>,
    /// Whether the sandbox is stopped (files kept, nothing running); see `lifecycle.rs`.
    stopped: std::sync::atomic::AtomicBool,
    /// Serializes stop and resume.
    lifecycle: tokio::sync::Mutex<()>,
    /// The process that owns the sandbox, for a handle connected to it (`connected.rs`).
    owned: std::sync::OnceLock<connected::Owned>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A forgotten sandbox must not keep a container running: free it in the background on the
        // runtime it was made on. If that runtime has shut down, the task never runs; containers
        // of a process that died are found by their labels (`cleanup_orphans`).
        if !self.closing.is_cancelled() && !self.detached.load(std::sync::atomic::Ordering::Acquire) {
            if let Some(rt) = self.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok()) {
                let engine = self.engine.clone();
                let id = self.id.clone();
                tracing::debug!(sandbox = %id, "sandbox dropped without close(); freeing it");
                rt.spawn(async move {
                    if let Err(e) = engine.close().await {
                        tracing::warn!(sandbox = %id, "freeing a dropped sandbox failed: {e}");
                    }
                });
            }
        }
    }
}

/// An isolated sandbox: a filesystem, a working directory and an environment, driven by one API
/// whatever the engine. Cheap to clone (clones share the sandbox); every method takes `&self`, so
/// calls may run concurrently.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.inner.id)
            .field("backend", &self.backend())
            .field("resource", &self.inner.engine.resource_id())
            .finish()
    }
}

/// `INVALID_ARGUMENT` unless `id` has the form of a sandbox id.
fn check_id(id: &str) -> Result<()> {
    if !id.starts_with("sbx-") || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::InvalidArgument(format!("{id:?} is not a sandbox id")));
    }
    Ok(())
}

fn new_id() -> String {
    format!("sbx-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl Sandbox {
    /// Creates a sandbox from `config` on the backend it names (or the best one, for `auto`).
    pub async fn create(config: SandboxConfig) -> Result<Sandbox> {
        Self::create_resolved(config.resolve()?, None, Vec::new()).await
    }

    /// Creates a sandbox from a resolved config, on a fresh engine resource or from `snapshot`;
    /// `warnings` are added to the engine's.
    async fn create_resolved(
        cfg: ResolvedConfig,
        snapshot: Option<crate::snapshot::Snapshot>,
        warnings: Vec<String>,
    ) -> Result<Sandbox> {
        let id = new_id();
        // In a task of its own: a caller that stops waiting (a timeout around create) cannot cut a
        // create in half; the finished sandbox is then dropped, and Drop frees it.
        let task = tokio::spawn(async move {
            let (engine, fallback) = match &snapshot {
                None => backend::open(&cfg, &id).await?,
                Some(s) => (backend::open_snapshot(&cfg, &id, s).await?, None),
            };
            metrics::record_created(engine.kind(), fallback.is_some());
            let state = State { workdir: cfg.workdir.clone(), env: cfg.env.clone() };
            let ca = cfg.ca.clone();
            let sb = Sandbox::from_parts(id, Arc::from(engine), cfg, state, fallback);
            let mut warnings = [sb.inner.engine.warnings(), warnings].concat();
            sb.set_cache_env(&mut warnings);
            *sb.inner.warnings.lock().unwrap_or_else(|p| p.into_inner()) = warnings;
            if let Some(ca) = ca {
                // A sandbox that cannot trust what was asked would fail later, less clearly.
                if let Err(e) = sb.install_ca(&ca).await {
                    let _ = sb.close().await;
                    return Err(e);
                }
            }
            Ok::<_, Error>(sb)
        });
        let sb = task.await.map_err(|e| Error::io("creating the sandbox", std::io::Error::other(e)))??;
        tracing::info!(sandbox = %sb.id(), backend = %sb.backend(), resource = %sb.resource_id(), "sandbox created");
        Ok(sb)
    }

    fn from_parts(
        id: String,
        engine: Arc<dyn Engine>,
        cfg: ResolvedConfig,
        state: State,
        fallback: Option<String>,
    ) -> Self {
        Sandbox {
            inner: Arc::new(Inner {
                id,
                engine,
                cfg,
                state: Mutex::new(state),
                closing: CancellationToken::new(),
                closed: tokio::sync::Mutex::new(false),
                fallback,
                runtime: tokio::runtime::Handle::try_current().ok(),
                detached: std::sync::atomic::AtomicBool::new(false),
                warnings: Mutex::new(Vec::new()),
                stopped: std::sync::atomic::AtomicBool::new(false),
                lifecycle: tokio::sync::Mutex::new(()),
                owned: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The sandbox's id (`sbx-` and 12 hex digits), also found on its engine resources as a label.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The engine it runs on.
    pub fn backend(&self) -> BackendKind {
        self.inner.engine.kind()
    }

    /// How isolated it is from the host.
    pub fn isolation(&self) -> Isolation {
        self.inner.engine.isolation()
    }

    /// Why `auto` fell back to a weaker backend, when it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.inner.fallback.as_deref()
    }

    /// The engine resource: a container id (docker) or a host directory (local).
    pub fn resource_id(&self) -> String {
        self.inner.engine.resource_id()
    }

    /// Where the config's `ports` are reachable on the host (`http://127.0.0.1:<port>`).
    pub fn ports(&self) -> Vec<PortMapping> {
        self.inner.engine.ports()
    }

    /// The image it was created from; `None` on the local backend, which uses the host's tools.
    pub fn image(&self) -> Option<&str> {
        (self.backend() != BackendKind::Local).then_some(self.inner.cfg.image.as_str())
    }

    /// The current working directory.
    pub fn workdir(&self) -> String {
        self.state().workdir.to_string()
    }

    /// The environment every exec gets.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.state().env.clone()
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.closing.is_cancelled()
    }

    /// What went wrong at create without failing it, e.g. a dependency cache that could not be
    /// mounted (the sandbox then works without it).
    pub fn warnings(&self) -> Vec<String> {
        self.inner.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether commands and file operations go through the in-sandbox agent (the Docker
    /// backend's fast path, starting it if it has not started yet); `false` means the engine's
    /// own API serves them (other backends, `DAGGER_SANDBOX_AGENT=off`, or an agent that failed).
    pub async fn agent_running(&self) -> bool {
        !self.is_closed() && self.inner.engine.agent_running().await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State half-written (every update is one assignment).
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn closed_error(&self) -> Error {
        Error::Closed { sandbox: self.inner.id.clone() }
    }

    /// Runs `fut` unless the sandbox is or becomes closed, which turns it into `CLOSED`, or is
    /// stopped (`STOPPED`).
    async fn guard<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.check_running()?;
        self.touch_owner().await?;
        tokio::select! {
            biased;
            _ = self.inner.closing.cancelled() => Err(self.closed_error()),
            r = fut => r,
        }
    }

    /// Resolves `path` against the workdir.
    pub fn resolve_path(&self, path: &str) -> Result<SandboxPath> {
        let base = self.state().workdir.clone();
        SandboxPath::resolve(&base, path)
    }

    fn check_restricted(&self, path: &SandboxPath, tree: bool) -> Result<()> {
        let r = &self.inner.cfg.restricted;
        let hit = if tree { r.check_tree(path) } else { r.check(path) };
        match hit {
            Some(pattern) => Err(Error::RestrictedPath {
                sandbox: self.inner.id.clone(),
                path: path.to_string(),
                pattern: pattern.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// With restricted paths set, refuses writes whose parent directories pass through a symlink:
    /// the link could lead into a restricted directory that the path itself does not name.
    async fn refuse_symlinked_parents(&self, paths: &[SandboxPath]) -> Result<()> {
        if self.inner.cfg.restricted.is_empty() {
            return Ok(());
        }
        let mut dirs = std::collections::BTreeSet::new();
        for p in paths {
            dirs.extend(p.ancestors());
        }
        for d in dirs {
            if self.inner.engine.stat(&d).await? == Some(EntryKind::Symlink) {
                return Err(Error::invalid_path(
                    d.to_string(),
                    "it is a symlink, and with restrictedPaths set writes through symlinked directories are refused",
                ));
            }
        }
        Ok(())
    }

    /// Runs `sh -c command` in the workdir with the sandbox env. A non-zero exit is a result;
    /// running past the timeout kills the command and is `TIMEOUT` (with the partial output).
    pub async fn exec(&self, command: &str, opts: ExecOptions) -> Result<ExecResult> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let (cwd, mut env) = {
            let st = self.state();
            let cwd = match &opts.cwd {
                Some(c) => SandboxPath::resolve(&st.workdir, c)?,
                None => st.workdir.clone(),
            };
            (cwd, st.env.clone())
        };
        for (k, v) in &opts.env {
            validate_env(k, v)?;
            env.insert(k.clone(), v.clone());
        }
        let timeout = opts.timeout.unwrap_or(self.inner.cfg.timeout);
        if timeout.is_zero() {
            return Err(Error::InvalidArgument("timeout must be greater than 0".into()));
        }
        let spec = ExecSpec {
            command: command.to_string(),
            env,
            cwd,
            stdin: opts.stdin,
            timeout,
            output_cap: self.inner.cfg.output_cap,
        };
        let started = std::time::Instant::now();
        let kind = self.inner.engine.kind();
        // A connected handle tells the sandbox's owner a long call is running.
        let _alive = self.keep_alive();
        let run = self.guard(self.inner.engine.start_exec(spec)).await.inspect_err(|_| {
            metrics::record_exec(kind, false, started.elapsed().as_millis() as u64);
        })?;
        let outcome = drive(
            run,
            timeout,
            self.inner.cfg.output_cap,
            opts.output,
            opts.cancel.unwrap_or_default(),
            self.inner.closing.clone(),
        )
        .await
        .inspect_err(|_| metrics::record_exec(kind, false, started.elapsed().as_millis() as u64))?;
        let ok = matches!(outcome.end, ExecEnd::Exited) && outcome.result.exit_code == 0;
        metrics::record_exec(kind, ok, started.elapsed().as_millis() as u64);
        match outcome.end {
            ExecEnd::Exited => Ok(outcome.result),
            ExecEnd::TimedOut => Err(Error::Timeout {
                sandbox: self.inner.id.clone(),
                command: shorten(command),
                timeout_ms: timeout.as_millis() as u64,
                partial: Box::new(outcome.result),
            }),
            ExecEnd::Cancelled => {
                Err(Error::Cancelled { sandbox: self.inner.id.clone(), op: format!("exec {}", shorten(command)) })
            }
            ExecEnd::Closed => Err(self.closed_error()),
        }
    }

    /// The streaming variant of [`exec`](Self::exec): output chunks arrive on the returned handle as
    /// the command writes them, then the result.
    pub fn exec_stream(&self, command: &str, opts: ExecOptions) -> ExecStream {
        let (tx, rx) = mpsc::channel(64);
        let sb = self.clone();
        let command = command.to_string();
        let task = tokio::spawn(async move { sb.exec(&command, opts.output(tx)).await });
        ExecStream { rx, task }
    }

    /// Makes `path` the working directory of later execs and relative paths, creating it if needed.
    pub async fn set_workdir(&self, path: &str) -> Result<()> {
        let p = self.resolve_path(path)?;
        self.guard(async {
            match self.inner.engine.stat(&p).await? {
                Some(EntryKind::Dir) | Some(EntryKind::Symlink) => Ok(()),
                Some(_) => Err(Error::InvalidArgument(format!("{p} exists and is not a directory"))),
                None => {
                    self.check_restricted(&p, false)?;
                    let mut w = TarWriter::new();
                    w.dir(&p)?;
                    self.inner.engine.upload_tar(crate::stream::from_bytes(w.finish()?)).await
                }
            }
        })
        .await?;
        self.state().workdir = p;
        Ok(())
    }

    /// Sets one variable for every later exec.
    pub fn with_env(&self, key: &str, value: &str) -> Result<()> {
        self.with_envs([(key, value)])
    }

    /// Sets many variables for every later exec; none is set if any is invalid.
    pub fn with_envs<K: AsRef<str>, V: AsRef<str>>(&self, vars: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())).collect();
        for (k, v) in &vars {
            validate_env(k, v)?;
        }
        self.state().env.extend(vars);
        Ok(())
    }

    /// Lets the engine resources outlive every handle: dropping the last one no longer frees them
    /// (close still does). For a daemon that shuts down and takes its sandboxes back with
    /// [`reattach`](Self::reattach) on its next start.
    pub fn detach(&self) {
        self.inner.detached.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes back a sandbox whose handle was lost (a daemon that restarted), from its id, the
    /// resource id it reported ([`resource_id`](Self::resource_id)) and the config it was created
    /// with. `NOT_FOUND` when the resource is gone or no longer runs. On docker the container keeps
    /// the env the sandbox was created with, so `config` may leave secret values out and still get
    /// them back; env set with `with_env` after create, the workdir set later, and every env value
    /// of a local sandbox are not recorded by the engine: they come from `config`.
    pub async fn reattach(config: SandboxConfig, id: &str, resource_id: &str) -> Result<Sandbox> {
        let cfg = config.resolve()?;
        check_id(id)?;
        let (engine, env) = backend::reattach(&cfg, id, resource_id).await?;
        tracing::info!(sandbox = id, resource = resource_id, "sandbox reattached");
        Ok(Sandbox::from_reattached(id, engine, env, cfg))
    }

    /// A handle on an engine resource taken back: the env it recorded with the config's values
    /// winning, the config's workdir, and the CA and cache variables the config asks for.
    pub(crate) fn from_reattached(
        id: &str,
        engine: Box<dyn crate::backend::Engine>,
        mut env: std::collections::BTreeMap<String, String>,
        cfg: crate::config::ResolvedConfig,
    ) -> Sandbox {
        env.extend(cfg.env.clone());
        let state = State { workdir: cfg.workdir.clone(), env };
        let has_ca = cfg.ca.is_some();
        let sb = Sandbox::from_parts(id.to_string(), Arc::from(engine), cfg, state, None);
        if has_ca {
            sb.set_ca_env();
        }
        sb.set_cache_env(&mut Vec::new());
        sb
    }

    /// An independent sandbox with the same files, env and workdir; changes in one never show in
    /// the other. Each must be closed.
    pub async fn fork(&self) -> Result<Sandbox> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.check_running()?;
        let parent = self.clone();
        // In a task of its own, like create: a fork is never cut in half (a committed image and no
        // container to own it), and a fork that finishes after its parent closed is closed too.
        let task = tokio::spawn(async move {
            let id = new_id();
            let engine = parent.inner.engine.fork(&id).await?;
            metrics::record_created(engine.kind(), false);
            let state = parent.state().clone();
            let sb = Sandbox::from_parts(
                id,
                Arc::from(engine),
                parent.inner.cfg.clone(),
                state,
                parent.inner.fallback.clone(),
            );
            if parent.is_closed() {
                let _ = sb.close().await;
                return Err(parent.closed_error());
            }
            Ok(sb)
        });
        let sb = self
            .guard(async { task.await.map_err(|e| Error::io("forking the sandbox", std::io::Error::other(e)))? })
            .await?;
        tracing::info!(sandbox = %sb.id(), parent = %self.id(), "sandbox forked");
        Ok(sb)
    }

    /// Frees every engine resource the sandbox created. Idempotent; calls still in flight fail with
    /// `CLOSED`, and so does every later call.
    pub async fn close(&self) -> Result<()> {
        self.inner.closing.cancel();
        let mut done = self.inner.closed.lock().await;
        if *done {
            return Ok(());
        }
        // A connected handle's sandbox belongs to its owner: only the handle closes.
        if self.inner.owned.get().is_none() {
            self.inner.engine.close().await?;
        }
        *done = true;
        tracing::info!(sandbox = %self.inner.id, "sandbox closed");
        Ok(())
    }

    /// The default exec timeout of this sandbox.
    pub fn default_timeout(&self) -> Duration {
        self.inner.cfg.timeout
    }
}

/// A running streaming exec: chunks first, then the result.
#[derive(Debug)]
pub struct ExecStream {
    rx: mpsc::Receiver<OutputChunk>,
    task: tokio::task::JoinHandle<Result<ExecResult>>,
}

impl ExecStream {
    /// The next output chunk, or `None` once the command's output has ended.
    pub async fn next_chunk(&mut self) -> Option<OutputChunk> {
        self.rx.recv().await
    }

    /// Waits for the command and returns its result; chunks not yet read are discarded.
    pub async fn finish(self) -> Result<ExecResult> {
        drop(self.rx);
        self.task.await.map_err(|e| Error::io("exec task", std::io::Error::other(e)))?
    }
}

fn shorten(command: &str) -> String {
    const MAX: usize = 120;
    if command.len() <= MAX {
        return command.to_string();
    }
    let mut end = MAX;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &command[..end])
}

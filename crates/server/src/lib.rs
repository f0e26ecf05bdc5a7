//! The dagger-sandbox daemon: live sandboxes behind a REST API (docs/rest-api.md), their logs as
//! server-sent events, Prometheus metrics, a TTL reaper and a reconcile with the engine on start.
//!
//! Shutting down on SIGINT/SIGTERM stops serving but leaves every session's sandbox running: the
//! next start on the same state dir takes them back (`reconcile`), so restarting the daemon loses
//! no work. `DELETE /api/sandbox` (or `dagger-sandbox clean`) is how sessions are stopped for good.

pub mod api;
pub mod auth;
pub mod error;
pub mod guard;
pub mod listen;
pub mod logs;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod quota;
pub mod reaper;
pub mod reconcile;
pub mod sessions;
pub mod templates;
pub mod views;
pub mod whole;

/// The state directory shared by the daemon and its clients (moved below the server so library
/// surfaces can find the daemon).
pub use dagger_sandbox_daemon_client::state;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sessions::Sessions;

/// How `dagger-sandbox serve` runs the daemon.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; must be a loopback address.
    pub addr: SocketAddr,
    /// The state directory (database, token, daemon.json).
    pub state_dir: PathBuf,
    /// How often the reaper looks for expired sessions.
    pub reap_interval: Duration,
    /// Most sandboxes held at once; a create beyond it gets `QUOTA_EXCEEDED` (429).
    pub max_sandboxes: usize,
    /// How long a client has to send a request's headers before its connection is closed.
    pub header_timeout: Duration,
    /// Longest pause inside a request body before the request fails.
    pub body_timeout: Duration,
    /// Warm pools: (template, size) pairs whose sandboxes are started ahead and handed out to
    /// creates that ask for the template and nothing more.
    pub pools: Vec<(String, usize)>,
    /// Stop (keeping its files) a session's sandbox after this long without calls; the next call
    /// resumes it. `None`: never. The TTL still ends sessions, stopped or not.
    pub idle_stop: Option<Duration>,
}

impl Default for ServeOptions {
    /// `127.0.0.1:7878`, the default state dir, a 5-minute reap, 32 sandboxes, 10 s for headers,
    /// 30 s of body silence.
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 7878)),
            state_dir: state::default_state_dir(),
            reap_interval: Duration::from_secs(300),
            max_sandboxes: quota::DEFAULT_MAX_SANDBOXES,
            header_timeout: listen::DEFAULT_HEADER_TIMEOUT,
            body_timeout: listen::DEFAULT_BODY_TIMEOUT,
            pools: Vec::new(),
            idle_stop: None,
        }
    }
}

/// The lock file that keeps two daemons off one state dir (each would remove the other's
/// sandboxes as orphans when it reconciles).
const LOCK_FILE: &str = "daemon.lock";

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A daemon serving in this process.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The bearer token of its state dir.
    pub token: String,
    /// Its state directory (canonical).
    pub state_dir: PathBuf,
    /// What reconcile did on start.
    pub reconciled: reconcile::ReconcileReport,
    sessions: Arc<Sessions>,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    reaper: JoinHandle<()>,
    lock: Flock<File>,
}

impl RunningServer {
    /// The dashboard URL, with the token (`http://127.0.0.1:7878/?token=...`).
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// `http://<addr>`, for clients.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The session registry, for in-process callers and tests.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// Resolves when the HTTP server stops by itself (it should not); the error says why.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        match (&mut self.server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!("the HTTP server task failed: {e}")),
        }
    }

    /// Stops serving gracefully: requests in flight finish (up to 10 s), log followers get their
    /// `end` event, `daemon.json` is removed, and every sandbox is LEFT RUNNING for the next start.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let RunningServer { server, reaper, sessions, state_dir, lock, addr, .. } = self;
        let abort = server.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping them");
            abort.abort();
        }
        reaper.abort();
        sessions.shutdown_pools().await;
        sessions.detach_all();
        if state::read_daemon_info(&state_dir)
            .is_some_and(|i| i.pid == std::process::id() && i.addr == addr.to_string())
        {
            let _ = std::fs::remove_file(state::daemon_info_path(&state_dir));
        }
        drop(lock);
        tracing::info!("daemon stopped; sessions were left running for the next start");
    }

    /// Stops at once, like a crash (`kill -9`), for tests: nothing is cleaned up, `daemon.json`
    /// stays, and the sandboxes are left as they are.
    pub fn crash(self) {
        self.shutdown.cancel();
        self.server.abort();
        self.reaper.abort();
        self.sessions.detach_all();
        drop(self.lock);
    }
}

/// Takes the state dir's lock (an `flock`, released by the kernel when the process dies, so a
/// `kill -9` never leaves a stale lock), or says which daemon holds it.
fn lock_state_dir(dir: &std::path::Path) -> anyhow::Result<Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => {
            let who = state::read_daemon_info(dir)
                .map(|i| format!(" (pid {}, listening on {})", i.pid, i.addr))
                .unwrap_or_default();
            anyhow::bail!(
                "another daemon is already running on the state dir {}{who}; use it, stop it, or pass another --state-dir",
                dir.display()
            )
        }
        Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Starts the daemon in this process: checks the address, locks the state dir, loads the token
/// and templates, opens the registry, reconciles with the engine, listens, starts the reaper and
/// writes `daemon.json`. `run` is this plus signals; tests call it with port 0.
pub async fn start(opts: ServeOptions) -> anyhow::Result<RunningServer> {
    if !opts.addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: the daemon only listens on a loopback address (127.0.0.1 or ::1), \
             because its API runs commands on this machine",
            opts.addr
        );
    }
    if opts.reap_interval.is_zero() {
        anyhow::bail!("the reap interval must be greater than 0");
    }
    if opts.max_sandboxes == 0 {
        anyhow::bail!("the maximum of sandboxes must be at least 1");
    }
    if opts.header_timeout.is_zero() || opts.body_timeout.is_zero() {
        anyhow::bail!("the header and body read timeouts must be greater than 0");
    }
    if opts.idle_stop.is_some_and(|d| d.is_zero()) {
        anyhow::bail!("the idle stop must be greater than 0");
    }
    state::ensure_dir(&opts.state_dir)
        .with_context(|| format!("creating the state dir {}", opts.state_dir.display()))?;
    let state_dir = std::fs::canonicalize(&opts.state_dir)
        .with_context(|| format!("resolving the state dir {}", opts.state_dir.display()))?;
    let lock = lock_state_dir(&state_dir)?;
    let token = state::load_or_create_token(&state_dir)
        .with_context(|| format!("reading or creating the token in {}", state_dir.display()))?;
    let templates = templates::load(&state_dir)?;
    let pools = templates.pools(&opts.pools);
    let openapi = Arc::new(openapi::document(&templates.names()));
    let db = state::db_path(&state_dir);
    let store = tokio::task::spawn_blocking(move || dagger_sandbox_store::Store::open(&db))
        .await?
        .with_context(|| format!("opening the session registry {}", state::db_path(&state_dir).display()))?;
    let owner = format!("{}{}", dagger_sandbox::DAEMON_OWNER_PREFIX, state_dir.display());
    let sessions = Sessions::new(store, owner, templates);
    let reconciled = reconcile::reconcile(&sessions).await.context("reconciling sessions with the engine")?;
    // After reconcile: it would remove the pooled sandboxes, which belong to no session.
    sessions.start_pools(&pools).map_err(|e| anyhow::anyhow!("{e}"))?;

    let listener = tokio::net::TcpListener::bind(opts.addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another program listens there; pass another --addr, e.g. 127.0.0.1:0)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {}: {e}{hint}", opts.addr)
    })?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let token_arc: Arc<str> = Arc::from(token.as_str());
    let app_state = api::AppState {
        sessions: sessions.clone(),
        shutdown: shutdown.clone(),
        token: token_arc.clone(),
        quota: Arc::new(quota::Quota::new(opts.max_sandboxes)),
        openapi,
    };
    let mcp = mcp::service(&sessions, shutdown.clone()).context("configuring the MCP server at /mcp")?;
    let app = api::router(app_state, token_arc, mcp);
    let timeouts = listen::ReadTimeouts { headers: opts.header_timeout, body_idle: opts.body_timeout };
    let server = tokio::spawn(listen::serve(listener, app, timeouts, shutdown.clone()));
    let reaper = tokio::spawn(reaper::run(sessions.clone(), opts.reap_interval, opts.idle_stop, shutdown.clone()));
    let info = state::DaemonInfo {
        addr: addr.to_string(),
        pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    state::write_daemon_info(&state_dir, &info)
        .with_context(|| format!("writing {}", state::daemon_info_path(&state_dir).display()))?;
    tracing::info!(%addr, state_dir = %state_dir.display(), "daemon listening");
    Ok(RunningServer { addr, token, state_dir, reconciled, sessions, shutdown, server, reaper, lock })
}

/// Runs the daemon until SIGINT/SIGTERM: reconciles, listens, writes `daemon.json`, prints the
/// dashboard URL (with `?token=`) on stdout, then serves and reaps. Sessions are left running on
/// shutdown; the next start takes them back.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut server = start(opts).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "dagger-sandbox daemon listening on {}", server.dashboard_url())?;
        out.flush()?;
    }
    let failed = tokio::select! {
        _ = sigterm.recv() => None,
        _ = sigint.recv() => None,
        r = server.stopped() => Some(r),
    };
    match failed {
        None => {
            tracing::info!("signal received; shutting down (sessions stay running)");
            server.shutdown().await;
            Ok(())
        }
        Some(r) => {
            server.sessions.detach_all();
            r.and_then(|()| Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")))
        }
    }
}

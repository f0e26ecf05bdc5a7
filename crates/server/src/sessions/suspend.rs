//! Stopping a session's sandbox without ending the session (`POST /api/sandbox/{id}/stop`, the
//! idle timeout) and resuming it (`POST .../resume`, or the next call after an idle stop).
//!
//! States: `active` -> stop -> `stopped` -> resume -> `active`; either -> DELETE or TTL ->
//! `terminated`. A stopped sandbox keeps its files (docker: the stopped container; local: the
//! directory) and runs nothing; its service is started again on resume. A session a user stopped
//! answers calls with `STOPPED` (409) until resumed; one the idle timeout stopped is resumed by
//! the next call.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dagger_sandbox_store::{Session, SessionUpdate, Status};

use super::{Live, Sessions};
use crate::error::ApiError;
use crate::views::Meta;

/// Who stopped a session's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A user or client (`POST .../stop`): calls get `STOPPED` until a resume.
    User,
    /// The idle timeout: the next call resumes it.
    Idle,
}

impl StopCause {
    /// `"user"` or `"idle"`, as `stoppedBy` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::User => "user",
            StopCause::Idle => "idle",
        }
    }
}

/// What a held session keeps for stop and resume.
#[derive(Default)]
pub(crate) struct PauseState {
    /// Serializes stop and resume of one session (a resume restarts the service once).
    lock: tokio::sync::Mutex<()>,
    /// Set while stopped by the idle timeout: the next call resumes.
    idle: AtomicBool,
    /// Counts stops, so a service watcher knows its service ended because of one.
    stops: AtomicU64,
    /// Calls running now; an idle stop waits for none.
    busy: Arc<AtomicUsize>,
}

/// Counts a call as running until dropped.
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PauseState {
    /// How many stops happened so far.
    pub(crate) fn generation(&self) -> u64 {
        self.stops.load(Ordering::SeqCst)
    }

    /// Whether a stop happened since `generation` was read.
    pub(crate) fn stopped_since(&self, generation: u64) -> bool {
        self.generation() != generation
    }

    /// Marks a call as running until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.busy.clone())
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    /// Takes the idle mark of a row a restarted daemon reads back.
    pub(crate) fn restore(&self, s: &Session) {
        let idle = s.status == Status::Stopped && Meta::of(s).stopped_by.as_deref() == Some(StopCause::Idle.as_str());
        self.idle.store(idle, Ordering::SeqCst);
    }
}

impl Sessions {
    /// `live` if its sandbox runs; resumed first when the idle timeout stopped it; `STOPPED`
    /// when a user did.
    pub(super) async fn running(&self, live: Arc<Live>) -> Result<Arc<Live>, ApiError> {
        if !live.sandbox.is_stopped() {
            return Ok(live);
        }
        if live.pause.idle.load(Ordering::SeqCst) {
            self.resume(live.sandbox.id()).await?;
            return Ok(live);
        }
        Err(ApiError::Sandbox(dagger_sandbox::Error::Stopped { sandbox: live.sandbox.id().to_string() }))
    }

    /// Stops a session's sandbox and keeps it: its files stay, nothing runs, the session is
    /// `stopped` until [`resume`](Self::resume). Idempotent; `SESSION_ENDED` when it has ended.
    pub async fn suspend(&self, id: &str, cause: StopCause) -> Result<Session, ApiError> {
        let live = self.held(id).await?;
        let _one = live.pause.lock.lock().await;
        if live.sandbox.is_stopped() {
            return self.get(id).await;
        }
        live.pause.stops.fetch_add(1, Ordering::SeqCst);
        live.pause.idle.store(cause == StopCause::Idle, Ordering::SeqCst);
        // The sandbox first: its service ends with it, and the watcher sees why.
        live.sandbox.stop().await?;
        live.service.lock().unwrap_or_else(|p| p.into_inner()).take();
        live.logs.system(format!("sandbox stopped ({}): files kept, nothing runs until resumed", cause.as_str()));
        let s = self.get(id).await?;
        let mut meta = s.metadata.clone();
        meta["stoppedBy"] = cause.as_str().into();
        let change = SessionUpdate { status: Some(Status::Stopped), metadata: Some(meta), ..Default::default() };
        let key = id.to_string();
        let row = self.db(move |st| st.update(&key, &change)).await?.ok_or_else(|| ApiError::no_session(id))?;
        tracing::info!(session = id, by = cause.as_str(), "session's sandbox stopped");
        Ok(row)
    }

    /// Brings a stopped session's sandbox back with the same files, env and workdir, and starts
    /// its service again. On a running session it only records activity (so a client may call it
    /// to keep a session from the idle timeout).
    pub async fn resume(&self, id: &str) -> Result<Session, ApiError> {
        let live = self.held(id).await?;
        let _one = live.pause.lock.lock().await;
        if !live.sandbox.is_stopped() {
            self.touch(id).await;
            return self.get(id).await;
        }
        live.sandbox.resume().await?;
        live.pause.idle.store(false, Ordering::SeqCst);
        live.logs.system("sandbox resumed");
        let s = self.get(id).await?;
        let meta = Meta::of(&s);
        let ports = live.sandbox.ports();
        let mut m = s.metadata.clone();
        if let Some(obj) = m.as_object_mut() {
            obj.remove("stoppedBy");
        }
        m["ports"] = serde_json::to_value(&ports).unwrap_or_default();
        let change = SessionUpdate {
            status: Some(Status::Active),
            metadata: Some(m),
            host_url: ports.first().map(|p| p.url.clone()),
            last_active_at: Some(Utc::now()),
            ..Default::default()
        };
        let key = id.to_string();
        let row = self.db(move |st| st.update(&key, &change)).await?.ok_or_else(|| ApiError::no_session(id))?;
        if let Some(cmd) = &meta.command {
            let service = self.start_service(&live, cmd).await?;
            *live.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
            if let Some(me) = self.me.upgrade() {
                me.watch_service(&live);
            }
        }
        tracing::info!(session = id, "session's sandbox resumed");
        Ok(row)
    }

    /// What another process needs to drive session `id` by itself (`POST .../attach`): the
    /// session and the config its sandbox was made with (env values left out). Counts as a call:
    /// records activity and resumes a sandbox the idle timeout stopped; one a user stopped is
    /// answered as it is (`stopped`), for the caller to resume when it wants.
    pub async fn attach(&self, id: &str) -> Result<(Session, dagger_sandbox::SandboxConfig), ApiError> {
        let live = self.held(id).await?;
        let live = match self.running(live.clone()).await {
            Err(ApiError::Sandbox(dagger_sandbox::Error::Stopped { .. })) => live,
            other => other?,
        };
        if live.sandbox.backend() == dagger_sandbox::BackendKind::Dagger {
            return Err(ApiError::BadRequest(
                "a dagger sandbox cannot be driven from another process: its state lives in the daemon".into(),
            ));
        }
        self.touch(id).await;
        let s = self.get(id).await?;
        let config = Sessions::config_of(&s)
            .ok_or_else(|| ApiError::Internal(format!("session {id} keeps no sandbox config")))?;
        Ok((s, config))
    }

    /// Stops (keeping them) the sandboxes of active sessions with no call for `idle`; how many.
    /// Sessions with a call still running are left alone.
    pub async fn stop_idle_once(&self, idle: Duration) -> usize {
        let cutoff = Utc::now() - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        let rows = match self.db(move |s| s.idle(cutoff)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("listing idle sessions failed: {e}");
                return 0;
            }
        };
        let mut n = 0;
        for s in rows {
            // Only sessions held here: one whose engine did not answer is not worth waking.
            let Some(live) = self.live(&s.id) else { continue };
            if live.pause.is_busy() || live.sandbox.is_stopped() {
                continue;
            }
            match self.suspend(&s.id, StopCause::Idle).await {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!(session = %s.id, "stopping an idle session failed: {e}"),
            }
        }
        n
    }
}

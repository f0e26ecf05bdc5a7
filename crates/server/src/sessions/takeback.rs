//! Taking sessions back after a daemon restart: at start (reconcile), on first use, and by the
//! reaper's periodic retry. A session whose engine does not answer yet is kept `active` and tried
//! again, never marked `lost`: an engine that is briefly down means "retry later".

use std::sync::Arc;

use dagger_sandbox::{BackendKind, ErrorCode, Sandbox, SandboxConfig};
use dagger_sandbox_store::{Provider, Session, SessionUpdate, Status};
use futures_util::StreamExt;

use super::{Live, Sessions, REASON_LOST};
use crate::error::ApiError;
use crate::logs::LogBuffer;
use crate::views::Meta;

/// How many sessions are taken back at once.
const CONCURRENCY: usize = 8;

/// What became of a session that was taken back.
#[derive(Debug)]
pub enum TakeBack {
    /// Held again and usable.
    Reattached,
    /// Its engine does not answer (or another call is taking it back): kept, tried again later.
    Pending(ApiError),
    /// Its resources are gone or could not be taken back: it was marked terminated.
    Lost,
}

/// Marks a session as being taken back (or stopped) until dropped, so a retry never reattaches
/// a sandbox that a stop is removing, nor two callers one sandbox twice.
pub(super) struct Retaking<'a> {
    sessions: &'a Sessions,
    id: String,
}

impl<'a> Retaking<'a> {
    /// The mark on `id` for a take-back, or `None` when another call holds it.
    pub(super) fn hold(sessions: &'a Sessions, id: &str) -> Option<Self> {
        Self::mark(sessions, id, false)
    }

    /// The mark on `id` for a stop: calls meanwhile see the session as ended, and no take-back
    /// starts. `None` when another call holds it.
    pub(super) fn hold_for_stop(sessions: &'a Sessions, id: &str) -> Option<Self> {
        Self::mark(sessions, id, true)
    }

    /// Whether a stop of `id` is under way.
    pub(super) fn is_stopping(sessions: &Sessions, id: &str) -> bool {
        sessions.retaking.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied().unwrap_or(false)
    }

    fn mark(sessions: &'a Sessions, id: &str, stopping: bool) -> Option<Self> {
        let mut marks = sessions.retaking.lock().unwrap_or_else(|p| p.into_inner());
        if marks.contains_key(id) {
            return None;
        }
        marks.insert(id.to_string(), stopping);
        Some(Retaking { sessions, id: id.to_string() })
    }
}

impl Drop for Retaking<'_> {
    fn drop(&mut self) {
        self.sessions.retaking.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

fn is_engine_unavailable(e: &ApiError) -> bool {
    matches!(e, ApiError::Sandbox(e) if e.code() == ErrorCode::EngineUnavailable)
}

impl Sessions {
    /// Takes one session back: `Reattached`, `Pending` when its engine does not answer now (the
    /// session stays active), or `Lost` (what is left of it removed, the session marked `lost`).
    pub async fn take_back(self: &Arc<Self>, s: &Session) -> TakeBack {
        if self.live(&s.id).is_some() {
            return TakeBack::Reattached;
        }
        let Some(_guard) = Retaking::hold(self, &s.id) else {
            return TakeBack::Pending(ApiError::Sandbox(dagger_sandbox::Error::EngineUnavailable {
                backend: s.provider.to_string(),
                tried: format!("session {} is being taken back by another call", s.id),
                hint: "Retry in a moment.".into(),
            }));
        };
        match self.reattach(s).await {
            Ok(()) => {
                tracing::info!(session = %s.id, "session taken back");
                TakeBack::Reattached
            }
            Err(e) if is_engine_unavailable(&e) => {
                tracing::warn!(session = %s.id, "the engine does not answer; keeping the session to take back later: {e}");
                TakeBack::Pending(e)
            }
            Err(e) => {
                tracing::warn!(session = %s.id, "session could not be taken back, marking it lost: {e}");
                if let Err(e) = self.stop(&s.id, REASON_LOST).await {
                    tracing::warn!(session = %s.id, "marking the session lost failed: {e}");
                }
                TakeBack::Lost
            }
        }
    }

    async fn reattach(self: &Arc<Self>, s: &Session) -> Result<(), ApiError> {
        let config = Sessions::config_of(s).ok_or_else(|| {
            ApiError::Internal("its metadata holds no sandbox config (made by another program?)".into())
        })?;
        let resource =
            s.container_id.as_deref().ok_or_else(|| ApiError::Internal("it has no engine resource".into()))?;
        if s.provider == Provider::Dagger {
            return Err(ApiError::Internal("dagger sandboxes cannot be taken back".into()));
        }
        // A stopped session's container is stopped on purpose: taken back as it is.
        let sandbox = if s.status == Status::Stopped {
            Sandbox::reattach_stopped(config, &s.id, resource).await?
        } else {
            Sandbox::reattach(config, &s.id, resource).await?
        };
        if let Err(e) = self.adopt(s, sandbox.clone()).await {
            // Its service did not come back: free it rather than hold a half-working session.
            let _ = sandbox.close().await;
            return Err(e);
        }
        Ok(())
    }

    /// Takes back an active session a caller wants to use now; its engine answering again is
    /// noticed at once instead of at the next retry.
    pub(super) async fn take_back_now(self: &Arc<Self>, s: &Session) -> Result<Arc<Live>, ApiError> {
        match self.take_back(s).await {
            TakeBack::Reattached => self.live(&s.id).ok_or_else(|| ApiError::no_session(&s.id)),
            TakeBack::Pending(e) => Err(e),
            TakeBack::Lost => Err(ApiError::SessionEnded { id: s.id.clone(), reason: REASON_LOST.into() }),
        }
    }

    /// Tries again every active session this daemon does not hold (its engine was down when the
    /// daemon started); what became of each.
    pub async fn take_back_pending(self: &Arc<Self>) -> Vec<TakeBack> {
        let rows = match self.list(false).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("listing sessions to take back failed: {e}");
                return vec![];
            }
        };
        let pending: Vec<Session> =
            rows.into_iter().filter(|s| s.status != Status::Terminated && self.live(&s.id).is_none()).collect();
        self.take_back_all(pending).await
    }

    /// Takes back `rows`, a few at a time.
    pub async fn take_back_all(self: &Arc<Self>, rows: Vec<Session>) -> Vec<TakeBack> {
        futures_util::stream::iter(rows)
            .map(|s| {
                let this = self.clone();
                async move { this.take_back(&s).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// Takes a session back after a restart: holds `sandbox` and restarts its service when its
    /// ports no longer answer (or, without ports, its recorded process is gone).
    pub async fn adopt(self: &Arc<Self>, s: &Session, sandbox: Sandbox) -> Result<(), ApiError> {
        let meta = Meta::of(s);
        let logs = Arc::new(LogBuffer::new());
        logs.system("daemon restarted: the session was taken back; earlier output of commands is not available");
        if sandbox.backend() == BackendKind::Local && !meta.env_names.is_empty() {
            // The values were never written down (a container keeps them; a directory does not).
            logs.system(format!(
                "the values of {} were not kept across the restart; pass them per exec",
                meta.env_names.join(", ")
            ));
        }
        let live = Live::new(sandbox.clone(), logs);
        live.pause.restore(s);
        // A stopped sandbox's service starts again on resume.
        if let Some(cmd) = meta.command.as_ref().filter(|_| !sandbox.is_stopped()) {
            let ports = sandbox.ports();
            let answering = if ports.is_empty() {
                super::service_output::still_running(&sandbox).await
            } else {
                let mut all = true;
                for p in &ports {
                    all &= dagger_sandbox::engines::serves_on_loopback(p.host_port).await;
                }
                all
            };
            if answering {
                live.logs.system("the service is still running; its output is read again from its record");
                super::service_output::follow(&live, true);
            } else {
                let service = self.start_service(&live, cmd).await?;
                *live.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
            }
            if meta.ports != ports {
                let mut m = s.metadata.clone();
                m["ports"] = serde_json::to_value(&ports).unwrap_or_default();
                let change = SessionUpdate {
                    metadata: Some(m),
                    host_url: ports.first().map(|p| p.url.clone()),
                    ..Default::default()
                };
                let id = s.id.clone();
                self.db(move |st| st.update(&id, &change)).await?;
            }
        }
        self.live_map().insert(s.id.clone(), live.clone());
        self.watch_service(&live);
        Ok(())
    }

    /// The config a session was created with, to reattach it.
    pub fn config_of(s: &Session) -> Option<SandboxConfig> {
        Meta::of(s).config
    }
}

//! Noticing a session's container stopped from outside the daemon (`docker stop`, `docker rm`, an
//! OOM kill): the engine's events, a check when a call on the session fails, and a periodic check.
//! Such a session is ended with `engine_stopped`, so its log followers get their `end` event and
//! calls answer `SESSION_ENDED` instead of failing one by one.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dagger_sandbox::inventory::ResourceState;
use dagger_sandbox::{BackendKind, ErrorCode};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Sessions, REASON_ENGINE_STOPPED};
use crate::error::ApiError;

/// How long the watcher waits before watching the engine's events again after they broke off.
const REWATCH_AFTER: Duration = Duration::from_secs(2);

impl Sessions {
    /// Ends held session `id` with `engine_stopped` when its container no longer runs (or its
    /// directory is gone); whether it did. An engine that does not answer proves nothing: kept.
    pub async fn end_if_engine_stopped(&self, id: &str) -> bool {
        let Some(live) = self.live(id) else { return false };
        let backend = live.sandbox.backend();
        // A stopped sandbox's container is stopped on purpose.
        if live.stopping.load(Ordering::SeqCst) || backend == BackendKind::Dagger || live.sandbox.is_stopped() {
            return false;
        }
        match self.inventory.find(backend, &live.sandbox.resource_id()).await {
            Ok(Some(r)) if r.state != ResourceState::Exited => return false,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(session = id, "cannot check the session's resource now: {e}");
                return false;
            }
        }
        // Another path (a DELETE, the reaper, a stop that keeps it) may have begun meanwhile.
        if live.stopping.load(Ordering::SeqCst) || live.sandbox.is_stopped() {
            return false;
        }
        live.logs.system("the sandbox's container was stopped outside the daemon");
        tracing::warn!(session = id, "the session's container was stopped outside the daemon; ending the session");
        match self.stop(id, REASON_ENGINE_STOPPED).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(session = id, "ending a session whose container stopped failed: {e}");
                false
            }
        }
    }

    /// What a failed call on held session `id` answers: `SESSION_ENDED` when a stop closed the
    /// sandbox under the call, or (`engine_stopped`) when the failure came from its container
    /// having stopped, else the failure itself.
    pub(super) async fn explain_failure(&self, id: &str, err: ApiError) -> ApiError {
        if let ApiError::Sandbox(e) = &err {
            if e.code() == ErrorCode::Closed && self.live(id).is_none() {
                // A stop let go of the sandbox and closed it under this call: for the caller the
                // session ended, as for a call that arrives a moment later.
                let reason = match self.get(id).await {
                    Ok(s) => s.ended_reason.unwrap_or_else(|| "stopping".into()),
                    Err(_) => "stopping".into(),
                };
                return ApiError::SessionEnded { id: id.to_string(), reason };
            }
        }
        let worth_checking = match &err {
            ApiError::Sandbox(e) => !matches!(
                e.code(),
                ErrorCode::Timeout | ErrorCode::InvalidArgument | ErrorCode::InvalidPath | ErrorCode::RestrictedPath
            ),
            _ => false,
        };
        if worth_checking && self.end_if_engine_stopped(id).await {
            return ApiError::SessionEnded { id: id.to_string(), reason: REASON_ENGINE_STOPPED.into() };
        }
        err
    }

    /// Checks every held session once against the engines; how many were ended.
    pub async fn check_engine_once(&self) -> usize {
        let held = self.live_ids();
        let running: Option<HashSet<String>> = match self.inventory.containers(Some(&self.owner)).await {
            Ok(list) => {
                Some(list.into_iter().filter(|r| r.state == ResourceState::Running).filter_map(|r| r.sandbox).collect())
            }
            Err(_) => None,
        };
        let mut ended = 0;
        for id in held {
            let Some(live) = self.live(&id) else { continue };
            let suspect = match live.sandbox.backend() {
                BackendKind::Docker => running.as_ref().is_some_and(|r| !r.contains(&id)),
                BackendKind::Local => !std::path::Path::new(&live.sandbox.resource_id()).is_dir(),
                BackendKind::Dagger => false,
            };
            if suspect && self.end_if_engine_stopped(&id).await {
                ended += 1;
            }
        }
        ended
    }

    /// Follows the engine's container events until `stop`, ending a session as soon as its
    /// container dies; watches again after the engine went away and came back.
    pub async fn watch_engine(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self.inventory.container_exits(&self.owner).await {
                Ok(mut exits) => loop {
                    let next = tokio::select! {
                        _ = stop.cancelled() => return,
                        n = exits.next() => n,
                    };
                    match next {
                        Some(Ok(id)) => {
                            let this = self.clone();
                            tokio::spawn(async move { this.end_if_engine_stopped(&id).await });
                        }
                        Some(Err(e)) => {
                            tracing::debug!("engine events broke off: {e}");
                            break;
                        }
                        None => break,
                    }
                },
                Err(e) => tracing::debug!("cannot watch the engine's events now: {e}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REWATCH_AFTER) => {}
            }
        }
    }
}

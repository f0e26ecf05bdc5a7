//! A create that outlives its caller. A REST client that disconnects drops its request; a create
//! cut there (a container made, its service starting, no row yet) would leak the container or the
//! local directory and its processes. So the create runs to the end in a task of its own, and a
//! session nobody waits for any more is stopped at once with `abandoned`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dagger_sandbox_store::Session;

use super::{CreateRequest, Sessions, REASON_ABANDONED};
use crate::error::ApiError;

/// Clears the flag when the caller's future is dropped (or returns).
struct Waiting(Arc<AtomicBool>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Sessions {
    /// Creates a session (checks the request, creates the sandbox, starts its service and waits
    /// for its ports, records it). On any failure nothing is left running or recorded; a caller
    /// that stops waiting leaves a session that is ended at once (`abandoned`, kept in the history).
    pub async fn create(self: &Arc<Self>, req: CreateRequest) -> Result<Session, ApiError> {
        let waiting = Arc::new(AtomicBool::new(true));
        let _waiting = Waiting(waiting.clone());
        let this = self.clone();
        let task = tokio::spawn(async move {
            let created = this.create_now(req).await;
            if let Ok(s) = &created {
                if !waiting.load(Ordering::SeqCst) {
                    tracing::warn!(session = %s.id, "the client went away before the session was ready; stopping it");
                    if let Err(e) = this.stop(&s.id, REASON_ABANDONED).await {
                        tracing::warn!(session = %s.id, "stopping an abandoned session failed: {e}");
                    }
                }
            }
            created
        });
        task.await.map_err(|e| ApiError::Internal(format!("the create task failed: {e}")))?
    }
}

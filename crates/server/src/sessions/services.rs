//! A session's service: started (its output recorded in the sandbox, `service_output.rs`) and
//! watched, so a service that exits by itself ends its session as `failed`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dagger_sandbox::Service;

use super::{service_output, Live, Sessions, REASON_FAILED};
use crate::error::ApiError;

impl Sessions {
    /// Starts `command` as the session's service, its output going to a record in the sandbox
    /// that is followed into the session log (so it survives the daemon, `service_output.rs`).
    pub(super) async fn start_service(&self, live: &Arc<Live>, command: &str) -> Result<Service, ApiError> {
        live.logs.system(format!("$ {command}"));
        let opts = dagger_sandbox::ServeOptions::new().ready_timeout(self.ready_timeout);
        let wrapped = service_output::recorded(&live.sandbox, command);
        match live.sandbox.serve(&wrapped, opts).await {
            Ok(s) => {
                service_output::follow(live, false);
                Ok(s)
            }
            Err(e) => {
                let tail = service_output::failure_tail(&live.sandbox).await;
                for line in tail.lines() {
                    live.logs.push("stderr", format!("{line}\n"));
                }
                live.logs.system(format!("service failed: {e}"));
                Err(match e {
                    dagger_sandbox::Error::Engine { sandbox, op, message } if !tail.is_empty() => {
                        let op = op.replace(&wrapped, command);
                        ApiError::from(dagger_sandbox::Error::Engine {
                            sandbox,
                            op,
                            message: format!("{message}; its stderr ends with: {tail}"),
                        })
                    }
                    e => e.into(),
                })
            }
        }
    }

    /// Ends the session with `failed` when its service exits by itself.
    pub(super) fn watch_service(self: &Arc<Self>, live: &Arc<Live>) {
        let Some(service) = live.service() else { return };
        let this = Arc::downgrade(self);
        let live = live.clone();
        let generation = live.pause.generation();
        tokio::spawn(async move {
            let code = service.wait().await;
            // A stop (of the session, or of its sandbox, which keeps it) ended it: not a failure.
            if live.stopping.load(Ordering::SeqCst) || live.pause.stopped_since(generation) {
                return;
            }
            let Some(this) = this.upgrade() else { return };
            let id = live.sandbox.id().to_string();
            let still_held = this.live(&id).is_some_and(|l| Arc::ptr_eq(&l, &live));
            // A service ends with its container: that is the engine's doing, not the service's.
            if !still_held || this.end_if_engine_stopped(&id).await {
                return;
            }
            live.logs.system(match code {
                Some(c) => format!("service exited with code {c}"),
                None => "service ended".to_string(),
            });
            tracing::warn!(session = %id, ?code, "service exited; ending the session");
            if let Err(e) = this.stop(&id, REASON_FAILED).await {
                tracing::warn!(session = %id, "ending a session whose service exited failed: {e}");
            }
        });
    }
}

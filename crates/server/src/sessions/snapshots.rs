//! Snapshots of sessions (`POST /api/sandbox/{id}/snapshot`) and what a create from one may ask.
//! Snapshots belong to no session: stopping the session, `clean` and the reconcile keep them.

use dagger_sandbox::Snapshot;

use super::{bad, CreateRequest, Sessions};
use crate::error::ApiError;

/// Refuses a create that names both a snapshot and an image or template (the snapshot is the image).
pub(super) fn check_from_snapshot(req: &CreateRequest) -> Result<(), ApiError> {
    match &req.from_snapshot {
        Some(r) if r.trim().is_empty() => Err(bad("fromSnapshot must name a snapshot (its id or name)")),
        Some(_) if req.image.is_some() || req.template.is_some() => {
            Err(bad("fromSnapshot starts from the snapshot: leave out image and template"))
        }
        _ => Ok(()),
    }
}

impl Sessions {
    /// Takes a snapshot of session `id`'s sandbox, named `name` when given.
    pub async fn snapshot(&self, id: &str, name: Option<&str>) -> Result<Snapshot, ApiError> {
        let live = self.usable(id).await?;
        self.touch(id).await;
        Ok(live.sandbox.snapshot(name).await?)
    }
}

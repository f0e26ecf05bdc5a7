//! Bringing the registry and the engine back in step when the daemon starts (after a clean stop or
//! a `kill -9`): sessions are taken back, kept for a later retry when their engine does not answer,
//! or marked `lost`; and resources that carry this daemon's owner label but belong to no session
//! that is still active (containers, snapshot images, local sandbox directories) are removed.
//! Resources of other owners (another daemon's state dir, a live Node or Python program, the same
//! state dir path on another machine sharing the engine) are never touched; those of programs of
//! this host known to be dead are removed by [`crate::reaper::sweep_dead_owners`].

use std::collections::HashSet;
use std::sync::Arc;

use dagger_sandbox::inventory::{Resource, ResourceKind};
use dagger_sandbox_store::Status;

use crate::error::ApiError;
use crate::sessions::{Sessions, TakeBack};

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sessions taken back and usable.
    pub reattached: usize,
    /// Sessions whose engine did not answer: kept active, taken back on use or by the reaper's retry.
    pub pending: usize,
    /// Sessions marked terminated (`lost`, or `failed` when their service did not come back).
    pub lost: usize,
    /// Containers of this daemon with no active session, removed.
    pub orphan_containers: usize,
    /// Snapshot images of this daemon with no active session, removed.
    pub orphan_images: usize,
    /// Local sandbox directories of this daemon with no active session, removed.
    pub orphan_directories: usize,
    /// Resources of dead programs of this host (not daemons) removed, see
    /// [`crate::reaper::sweep_dead_owners`].
    pub dead_owners: usize,
}

/// Takes back every active session and removes this daemon's orphaned engine resources.
pub async fn reconcile(sessions: &Arc<Sessions>) -> Result<ReconcileReport, ApiError> {
    let mut report = ReconcileReport::default();
    let rows = sessions.list(false).await?;
    for outcome in sessions.take_back_all(rows).await {
        match outcome {
            TakeBack::Reattached => report.reattached += 1,
            TakeBack::Pending(_) => report.pending += 1,
            TakeBack::Lost => report.lost += 1,
        }
    }
    sweep(sessions, &mut report).await?;
    report.dead_owners = crate::reaper::sweep_dead_owners().await;
    let scrubbed = sessions.scrub_ended().await?;
    if scrubbed > 0 {
        tracing::info!(sessions = scrubbed, "removed env values kept in ended sessions' rows");
    }
    tracing::info!(
        reattached = report.reattached,
        pending = report.pending,
        lost = report.lost,
        orphan_containers = report.orphan_containers,
        orphan_images = report.orphan_images,
        orphan_directories = report.orphan_directories,
        dead_owners = report.dead_owners,
        "reconciled sessions with the engine"
    );
    Ok(report)
}

/// Removes this daemon's resources that belong to no session still active (held, or kept for a
/// retry). Engines that do not answer are left for the next start.
async fn sweep(sessions: &Sessions, report: &mut ReconcileReport) -> Result<(), ApiError> {
    let kept: HashSet<String> =
        sessions.list(false).await?.into_iter().filter(|s| s.status != Status::Terminated).map(|s| s.id).collect();
    let inventory = sessions.inventory();
    let owner = sessions.owner();
    let mut found: Vec<Resource> = Vec::new();
    match inventory.containers(Some(owner)).await {
        Ok(c) => found.extend(c),
        Err(e) => tracing::warn!("could not list this daemon's containers to remove orphans: {e}"),
    }
    match inventory.images(Some(owner)).await {
        Ok(i) => found.extend(i),
        Err(e) => tracing::debug!("could not list this daemon's snapshot images: {e}"),
    }
    found.extend(inventory.directories(Some(owner)).await?);
    let mut orphans: Vec<Resource> =
        found.into_iter().filter(|r| r.made_here() && !r.sandbox.as_ref().is_some_and(|s| kept.contains(s))).collect();
    // Containers before images, newer snapshots before the ones they were made from.
    orphans.sort_by_key(|r| (r.kind == ResourceKind::SnapshotImage, std::cmp::Reverse(r.created)));
    for r in orphans {
        match inventory.remove(&r).await {
            Ok(true) => {
                tracing::info!(resource = %r.id, sandbox = ?r.sandbox, "removed a resource of this daemon with no active session");
                match r.kind {
                    ResourceKind::Container => report.orphan_containers += 1,
                    ResourceKind::SnapshotImage => report.orphan_images += 1,
                    ResourceKind::Directory => report.orphan_directories += 1,
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(resource = %r.id, "removing an orphaned resource failed: {e}"),
        }
    }
    Ok(())
}

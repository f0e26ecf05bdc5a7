//! Finding and removing what dead sandbox owners left behind: containers, snapshot images and
//! local directories whose owning process is known to be gone ([`crate::OwnerStatus::Dead`]).

use crate::error::Result;
use crate::inventory::{Inventory, Resource, ResourceKind};
use crate::owner::OwnerStatus;

/// What [`cleanup_orphans`] removed, and what it left alone because it could not judge the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Containers removed.
    pub containers: usize,
    /// Snapshot images removed.
    pub images: usize,
    /// Local sandbox directories removed.
    pub directories: usize,
    /// Resources left alone because their owner is on another host, in another PID namespace, or
    /// labelled in a format that names no namespace (see [`crate::OwnerStatus`]).
    pub unjudged: usize,
}

/// Removes sandboxes whose owning process has exited without closing them: labelled containers and
/// their snapshot images on the Docker engine (when one answers) and local sandbox directories.
/// Sandboxes of live processes, of daemons, and of owners this process cannot judge (another
/// machine sharing the engine, another PID namespace, an unknown or old label) are never touched,
/// and neither are snapshots ([`crate::Snapshot`]): no process owns them.
pub async fn cleanup_orphans() -> Result<CleanupReport> {
    let inventory = Inventory::new();
    let mut report = CleanupReport::default();
    let mut orphans: Vec<Resource> = Vec::new();
    for r in inventory.list(None).await? {
        match r.owner_status() {
            OwnerStatus::Dead => orphans.push(r),
            OwnerStatus::OtherHost | OwnerStatus::OtherPidNamespace | OwnerStatus::Unknown => {
                tracing::debug!(resource = %r.id, owner = ?r.owner, status = r.owner_status().as_str(), "left alone");
                report.unjudged += 1;
            }
            OwnerStatus::Alive | OwnerStatus::Daemon => {}
        }
    }
    // Containers before images, and newer snapshots before the ones they were made from.
    orphans.sort_by_key(|r| (r.kind == ResourceKind::SnapshotImage, std::cmp::Reverse(r.created)));
    for r in &orphans {
        match (r.kind, inventory.remove(r).await) {
            (ResourceKind::Container, Ok(_)) => report.containers += 1,
            (ResourceKind::SnapshotImage, Ok(true)) => report.images += 1,
            (ResourceKind::Directory, Ok(_)) => report.directories += 1,
            (ResourceKind::SnapshotImage, Ok(false)) => {}
            (_, Err(e)) if r.kind == ResourceKind::Container => return Err(e),
            (_, Err(e)) => tracing::warn!(resource = %r.id, "removing an orphan failed: {e}"),
        }
    }
    // Snapshots are never orphans; only what a crashed snapshot writer or delete left is.
    report.directories += tokio::task::spawn_blocking(crate::snapshot::records::sweep_leftovers).await.unwrap_or(0);
    if let Ok(docker) = crate::backend::docker::inventory::client().await {
        crate::backend::docker::snapshot::prune_deleted(&docker).await;
    }
    Ok(report)
}

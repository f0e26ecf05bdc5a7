//! Finding and removing what dead sandbox owners left behind: containers, snapshot images and
//! local directories, each labelled with the process that made it.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};

use crate::backend::docker;
use crate::backend::local::{local_sandbox_parent, OWNER_FILE};
use crate::error::{Error, Result};

/// Label on every engine resource this library creates (value `1`).
pub const LABEL_MANAGED: &str = "dev.dagger-sandbox.managed";
/// Label naming the sandbox id a resource belongs to.
pub const LABEL_SANDBOX: &str = "dev.dagger-sandbox.sandbox";
/// Label naming the owning process as `pid@boot-id`, so orphans can be told from live sandboxes.
pub const LABEL_OWNER: &str = "dev.dagger-sandbox.owner";

/// What [`cleanup_orphans`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Containers removed.
    pub containers: usize,
    /// Snapshot images removed.
    pub images: usize,
    /// Local sandbox directories removed.
    pub directories: usize,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Owner labels with this prefix belong to a daemon and are never orphans here.
pub const DAEMON_OWNER_PREFIX: &str = "daemon:";

/// This process as an owner label value: `pid@boot-id`.
pub(crate) fn owner_label() -> String {
    format!("{}@{}", std::process::id(), boot_id())
}

/// Whether the process an owner label names is gone (another boot, or no such pid now).
fn owner_is_dead(owner: &str) -> bool {
    if owner.starts_with(DAEMON_OWNER_PREFIX) {
        // A daemon reconciles its own sandboxes on start; they outlive its process on purpose.
        return false;
    }
    match owner.split_once('@') {
        Some((pid, boot)) => boot != boot_id() || !Path::new("/proc").join(pid).exists(),
        None => true,
    }
}

/// Removes sandboxes whose owning process has exited without closing them: labelled containers and
/// their snapshot images on the Docker engine (when one answers) and local sandbox directories.
/// Live sandboxes of running processes are never touched.
pub async fn cleanup_orphans() -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    if let Ok(client) = docker::connect(crate::backend::DOCKER_PROBE).await {
        let filters = HashMap::from([("label", vec![format!("{LABEL_MANAGED}=1")])]);
        let list = client
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .map_err(|e| Error::engine("", "listing containers", e))?;
        for c in list {
            let owner = c.labels.as_ref().and_then(|l| l.get(LABEL_OWNER)).cloned().unwrap_or_default();
            if owner_is_dead(&owner) {
                if let Some(id) = c.id.as_deref() {
                    docker::remove_container(&client, id)
                        .await
                        .map_err(|e| Error::engine("", "removing a container", e))?;
                    report.containers += 1;
                }
            }
        }
        let images = client
            .list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build()))
            .await
            .map_err(|e| Error::engine("", "listing images", e))?;
        // Children before parents: newer snapshots first.
        let mut images: Vec<_> =
            images.into_iter().filter(|i| owner_is_dead(i.labels.get(LABEL_OWNER).map_or("", |s| s))).collect();
        images.sort_by_key(|i| std::cmp::Reverse(i.created));
        for img in images {
            if matches!(docker::remove_image(&client, &img.id).await, Ok(true)) {
                report.images += 1;
            }
        }
    }
    let parent = local_sandbox_parent();
    if let Ok(rd) = std::fs::read_dir(&parent) {
        for entry in rd.flatten() {
            let dir = entry.path();
            let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else { continue };
            if owner_is_dead(owner.trim()) && std::fs::remove_dir_all(&dir).is_ok() {
                report.directories += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_alive_only_while_their_process_runs_in_this_boot() {
        assert!(!owner_is_dead(&owner_label()));
        assert!(owner_is_dead(&format!("{}@another-boot", std::process::id())));
        assert!(owner_is_dead(&format!("{}@{}", i32::MAX, boot_id())));
        assert!(owner_is_dead("garbage"));
        assert!(!owner_is_dead("daemon:/var/lib/x@1"));
    }
}

//! The per-user cache volumes (see `crate::caches`): made on first use, mounted into sandboxes that
//! ask, listed and removed by `dagger-sandbox cache ls|prune`. A volume that cannot be made is a
//! warning, not an error: the sandbox then installs without that cache.

use std::collections::HashMap;

use bollard::models::{Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use bollard::Docker;

use super::{describe, status};
use crate::caches::{namespace, CacheKind, LABEL_CACHE, LABEL_CACHE_NAMESPACE, LABEL_CACHE_USER};
use crate::error::{Error, Result};
use crate::owner::LABEL_MANAGED;

/// The mounts for `kinds`, making each volume when it is missing, and a warning for each that
/// could not be made.
pub(super) async fn cache_mounts(docker: &Docker, kinds: &[CacheKind]) -> (Vec<Mount>, Vec<String>) {
    let mut mounts = Vec::new();
    let mut warnings = Vec::new();
    for kind in kinds {
        let name = kind.volume_name();
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "1".to_string()),
            (LABEL_CACHE.to_string(), kind.as_str().to_string()),
            (LABEL_CACHE_USER.to_string(), nix::unistd::getuid().to_string()),
            (LABEL_CACHE_NAMESPACE.to_string(), namespace()),
        ]);
        // Creating an existing volume is a no-op that returns it, so concurrent creates agree.
        let req = VolumeCreateRequest { name: Some(name.clone()), labels: Some(labels), ..Default::default() };
        match docker.create_volume(req).await {
            Ok(_) => mounts.push(Mount {
                target: Some(kind.mount_path()),
                source: Some(name),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }),
            Err(e) => warnings.push(format!(
                "the {} cache volume {name} could not be made ({}); installing without it",
                kind.as_str(),
                describe(&e)
            )),
        }
    }
    (mounts, warnings)
}

/// One cache volume: its kind, name and size in bytes (when the engine reports it).
#[derive(Debug, Clone)]
pub(crate) struct CacheVolume {
    pub kind: String,
    pub name: String,
    pub size: Option<u64>,
}

/// This user's cache volumes, with sizes where their directories are readable from here.
pub(crate) async fn list(docker: &Docker) -> Result<Vec<CacheVolume>> {
    let uid = nix::unistd::getuid().to_string();
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_CACHE_USER}={uid}"), format!("{LABEL_CACHE_NAMESPACE}={}", namespace())],
    )]);
    let opts = ListVolumesOptionsBuilder::default().filters(&filters).build();
    let listed =
        docker.list_volumes(Some(opts)).await.map_err(|e| Error::engine("", "listing cache volumes", describe(&e)))?;
    let mut out = Vec::new();
    for v in listed.volumes.unwrap_or_default() {
        // The engine reports sizes only in its slow disk-usage walk, in a shape that differs
        // between API versions; where the volume's directory is readable here (the engine on this
        // host, as root), it is measured directly.
        let dir = std::path::PathBuf::from(&v.mountpoint);
        let size = tokio::task::spawn_blocking(move || dir_size(&dir)).await.ok().flatten();
        out.push(CacheVolume { kind: v.labels.get(LABEL_CACHE).cloned().unwrap_or_default(), size, name: v.name });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How long a prune waits for stopped containers that still mount a volume to be removed (a
/// disposable sandbox's container is deleted by the engine after `close` returns).
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Removes one cache volume; `Ok(false)` when a running sandbox still mounts it. A volume held only
/// by stopped containers (ones the engine is removing) is removed once they are gone.
pub(crate) async fn remove(docker: &Docker, name: &str) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
    loop {
        let opts = RemoveVolumeOptionsBuilder::default().force(false).build();
        match docker.remove_volume(name, Some(opts)).await {
            Ok(()) => return Ok(true),
            Err(e) if status(&e) == Some(404) => return Ok(true),
            Err(e) if status(&e) == Some(409) => {
                if tokio::time::Instant::now() >= deadline || mounted_by_a_running_container(docker, name).await? {
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(Error::engine("", "removing a cache volume", describe(&e))),
        }
    }
}

/// Whether a running container mounts volume `name`.
async fn mounted_by_a_running_container(docker: &Docker, name: &str) -> Result<bool> {
    let filters = HashMap::from([("volume".to_string(), vec![name.to_string()])]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let users = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| Error::engine("", "listing the containers of a cache volume", describe(&e)))?;
    Ok(users.iter().any(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)))
}

/// The bytes of the files under `dir` (not following symlinks), or `None` when it cannot be read.
pub(crate) fn dir_size(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0u64;
    let mut stack = vec![std::fs::read_dir(dir).ok()?];
    while let Some(entries) = stack.last_mut() {
        match entries.next() {
            None => {
                stack.pop();
            }
            Some(Ok(e)) => match e.file_type() {
                Ok(t) if t.is_dir() => {
                    if let Ok(sub) = std::fs::read_dir(e.path()) {
                        stack.push(sub);
                    }
                }
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            },
            Some(Err(_)) => {}
        }
    }
    Some(total)
}

//! What sandboxes exist on the engines that answer, found by their labels: Docker containers and
//! fork snapshot images, and local sandbox directories, with their sandbox id, owner and state. A
//! cleaner ([`crate::cleanup_orphans`]) or a daemon's reconcile lists, judges and removes them here
//! without knowing any engine's API.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};

use crate::backend::docker::inventory as docker;
use crate::backend::local::{local_sandbox_parent, remove_orphan_dir, OWNER_FILE};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::owner::{owner_status, OwnerStatus};

/// What kind of engine resource an inventory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A Docker container running (or having run) a sandbox.
    Container,
    /// A Docker image a fork was made from; removed with the last sandbox built on it.
    SnapshotImage,
    /// A local sandbox's directory on this host.
    Directory,
}

/// Whether a resource still serves its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceState {
    /// A container that runs.
    Running,
    /// A container that stopped (by `docker stop`, a crash of the engine, an OOM kill, ...).
    Exited,
    /// An image or a directory: it has no process state of its own.
    Stored,
}

/// One engine resource that belongs to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// What it is.
    pub kind: ResourceKind,
    /// The container id, image id, or the directory's sandbox root (as [`crate::Sandbox::resource_id`]).
    pub id: String,
    /// The sandbox id it belongs to, when labelled.
    pub sandbox: Option<String>,
    /// Its owner label, when it has one.
    pub owner: Option<String>,
    /// The machine that made it ([`crate::LABEL_HOST`]); `None` for directories and old resources.
    pub host: Option<String>,
    /// Whether it runs.
    pub state: ResourceState,
    /// When it was made (Unix seconds; 0 when unknown), so newer snapshots go first.
    pub created: i64,
}

impl Resource {
    /// The engine it lives on.
    pub fn backend(&self) -> BackendKind {
        match self.kind {
            ResourceKind::Container | ResourceKind::SnapshotImage => BackendKind::Docker,
            ResourceKind::Directory => BackendKind::Local,
        }
    }

    /// What this process can say about its owner (only [`OwnerStatus::Dead`] makes an orphan).
    pub fn owner_status(&self) -> OwnerStatus {
        owner_status(self.owner.as_deref().unwrap_or(""))
    }

    /// Whether it was made on this machine, or names no machine (directories, older labels).
    pub fn made_here(&self) -> bool {
        self.host.as_deref().is_none_or(|h| h == crate::owner::host_id())
    }
}

/// The engines' sandbox resources. Every call asks the engines again; nothing is cached.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    _private: (),
}

impl Inventory {
    /// An inventory of the Docker engine named by `DOCKER_HOST` (or the local socket) and of the
    /// local sandbox directory ([`crate::engines::local_sandbox_parent`]).
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// Every resource of `owner` (of every owner when `None`) on the engines that answer: the
    /// Docker part is left out, with a debug log, when no Docker engine answers.
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<Resource>> {
        let mut all = match self.containers(owner).await {
            Ok(c) => {
                let mut c = c;
                c.extend(self.images(owner).await?);
                c
            }
            Err(e) if e.code() == crate::ErrorCode::EngineUnavailable => {
                tracing::debug!("inventory: docker left out: {e}");
                vec![]
            }
            Err(e) => return Err(e),
        };
        all.extend(self.directories(owner).await?);
        Ok(all)
    }

    /// Sandbox containers of `owner`, in any state; `ENGINE_UNAVAILABLE` when Docker does not answer.
    pub async fn containers(&self, owner: Option<&str>) -> Result<Vec<Resource>> {
        docker::containers(&docker::client().await?, owner).await
    }

    /// Fork snapshot images of `owner`; `ENGINE_UNAVAILABLE` when Docker does not answer.
    pub async fn images(&self, owner: Option<&str>) -> Result<Vec<Resource>> {
        docker::images(&docker::client().await?, owner).await
    }

    /// Local sandbox directories of `owner` (whose owner file says so).
    pub async fn directories(&self, owner: Option<&str>) -> Result<Vec<Resource>> {
        let owner = owner.map(str::to_string);
        tokio::task::spawn_blocking(move || Ok(local_directories(&local_sandbox_parent(), owner.as_deref())))
            .await
            .map_err(|e| Error::io("listing local sandboxes", std::io::Error::other(e)))?
    }

    /// The resource a sandbox reported as its [`crate::Sandbox::resource_id`] on `backend`, as it is
    /// now; `None` when it is gone. `ENGINE_UNAVAILABLE` means "cannot tell now, ask later".
    pub async fn find(&self, backend: BackendKind, resource_id: &str) -> Result<Option<Resource>> {
        match backend {
            BackendKind::Docker => docker::container(&docker::client().await?, resource_id).await,
            BackendKind::Local => {
                let root = PathBuf::from(resource_id);
                Ok(root.parent().and_then(|home| directory(home, None)).filter(|d| d.id == resource_id))
            }
            BackendKind::Dagger => Err(Error::InvalidArgument(
                "dagger sandboxes have no engine resource outside the process that made them".into(),
            )),
        }
    }

    /// Removes one resource: a container with its volumes, an image (`Ok(false)` while a fork still
    /// builds on it), or a directory after stopping the processes its commands left running.
    /// Already gone counts as removed.
    pub async fn remove(&self, r: &Resource) -> Result<bool> {
        match r.kind {
            ResourceKind::Container | ResourceKind::SnapshotImage => docker::remove(&docker::client().await?, r).await,
            ResourceKind::Directory => {
                let root = PathBuf::from(&r.id);
                let parent = local_sandbox_parent();
                let Some(home) = root.parent().filter(|h| h.parent() == Some(parent.as_path())) else {
                    return Err(Error::InvalidArgument(format!("{} is not a local sandbox directory", r.id)));
                };
                let (home, id) = (home.to_path_buf(), r.sandbox.clone().unwrap_or_default());
                tokio::task::spawn_blocking(move || remove_orphan_dir(&home, &id))
                    .await
                    .map_err(|e| Error::io("removing a local sandbox", std::io::Error::other(e)))??;
                Ok(true)
            }
        }
    }

    /// Sandbox ids of `owner` whose container stopped or was removed, as the engine reports them,
    /// from now on. The stream ends (after an error item) when the engine goes away: watch again.
    pub async fn container_exits(&self, owner: &str) -> Result<impl Stream<Item = Result<String>> + Send + 'static> {
        Ok(docker::container_exits(&docker::client().await?, owner).boxed())
    }
}

/// The local sandbox at `home` (`<parent>/<id>`), when it has an owner file (and it is `owner`).
fn directory(home: &Path, owner: Option<&str>) -> Option<Resource> {
    let label = std::fs::read_to_string(home.join(OWNER_FILE)).ok()?.trim().to_string();
    if owner.is_some_and(|o| o != label) {
        return None;
    }
    let created = std::fs::metadata(home)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Some(Resource {
        kind: ResourceKind::Directory,
        id: home.join("root").display().to_string(),
        sandbox: home.file_name().map(|n| n.to_string_lossy().into_owned()),
        owner: Some(label),
        host: None,
        state: ResourceState::Stored,
        created,
    })
}

fn local_directories(parent: &Path, owner: Option<&str>) -> Vec<Resource> {
    let Ok(rd) = std::fs::read_dir(parent) else { return vec![] };
    rd.flatten().filter_map(|e| directory(&e.path(), owner)).collect()
}

//! The Docker half of the inventory: labelled containers and snapshot images, listed, inspected,
//! removed and watched through the Engine API, so no other crate needs bollard to find them.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use super::{describe, remove_container, remove_image, status};
use crate::backend::{docker_unavailable, DOCKER_PROBE};
use crate::error::{Error, Result};
use crate::inventory::{Resource, ResourceKind, ResourceState};
use crate::owner::{LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, LABEL_SANDBOX};

/// A client for the engine named by `DOCKER_HOST`, checked to answer within the probe.
pub(crate) async fn client() -> Result<Docker> {
    super::connect(DOCKER_PROBE).await.map_err(|why| docker_unavailable(&why))
}

/// An engine failure as the error to report: a connection that broke is "retry later"
/// (`ENGINE_UNAVAILABLE`), an answer that refused is `ENGINE_ERROR`.
fn failure(op: &str, e: DockerError) -> Error {
    match e {
        DockerError::DockerResponseServerError { .. } => Error::engine("", op, describe(&e)),
        e => docker_unavailable(&format!("{op}: {}", describe(&e))),
    }
}

/// The label filter for managed resources, narrowed to `owner` when given.
fn filters(owner: Option<&str>) -> HashMap<&'static str, Vec<String>> {
    let label = match owner {
        Some(o) => format!("{LABEL_OWNER}={o}"),
        None => format!("{LABEL_MANAGED}=1"),
    };
    HashMap::from([("label", vec![label])])
}

fn resource(
    kind: ResourceKind,
    id: String,
    labels: &HashMap<String, String>,
    state: ResourceState,
    created: i64,
) -> Resource {
    Resource {
        kind,
        id,
        sandbox: labels.get(LABEL_SANDBOX).cloned(),
        owner: labels.get(LABEL_OWNER).cloned(),
        host: labels.get(LABEL_HOST).cloned(),
        state,
        created,
    }
}

/// Whether `labels` carry `owner` (checked again: an engine may ignore a filter).
fn owned_by(labels: &HashMap<String, String>, owner: Option<&str>) -> bool {
    match owner {
        Some(o) => labels.get(LABEL_OWNER).map(String::as_str) == Some(o),
        None => labels.get(LABEL_MANAGED).map(String::as_str) == Some("1"),
    }
}

/// Sandbox containers, in any state.
pub(crate) async fn containers(docker: &Docker, owner: Option<&str>) -> Result<Vec<Resource>> {
    let filters = filters(owner);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let list = docker.list_containers(Some(opts)).await.map_err(|e| failure("listing containers", e))?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let state = if c.state.as_ref().map(|s| s.to_string()).as_deref() == Some("running") {
                ResourceState::Running
            } else {
                ResourceState::Exited
            };
            let id = c.id.filter(|_| owned_by(&labels, owner))?;
            Some(resource(ResourceKind::Container, id, &labels, state, c.created.unwrap_or(0)))
        })
        .collect())
}

/// Fork snapshot images. Images of user snapshots ([`crate::Snapshot`]) are not listed: no process
/// owns them, and only a snapshot delete may remove them.
pub(crate) async fn images(docker: &Docker, owner: Option<&str>) -> Result<Vec<Resource>> {
    let filters = filters(owner);
    let opts = ListImagesOptionsBuilder::default().filters(&filters).build();
    let list = docker.list_images(Some(opts)).await.map_err(|e| failure("listing images", e))?;
    Ok(list
        .into_iter()
        .filter(|i| owned_by(&i.labels, owner) && !i.labels.contains_key(crate::snapshot::LABEL_SNAPSHOT))
        .map(|i| resource(ResourceKind::SnapshotImage, i.id, &i.labels, ResourceState::Stored, i.created))
        .collect())
}

/// One container by id, `None` when the engine has no such container.
pub(crate) async fn container(docker: &Docker, id: &str) -> Result<Option<Resource>> {
    match docker.inspect_container(id, None).await {
        Ok(info) => {
            let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            let state = if running { ResourceState::Running } else { ResourceState::Exited };
            Ok(Some(resource(ResourceKind::Container, info.id.unwrap_or_else(|| id.into()), &labels, state, 0)))
        }
        Err(e) if status(&e) == Some(404) => Ok(None),
        Err(e) => Err(failure("inspecting a container", e)),
    }
}

/// Removes a container or image; `Ok(false)` when an image is still in use by a fork.
pub(crate) async fn remove(docker: &Docker, r: &Resource) -> Result<bool> {
    match r.kind {
        ResourceKind::Container => {
            remove_container(docker, &r.id).await.map_err(|e| failure("removing a container", e))?;
            Ok(true)
        }
        ResourceKind::SnapshotImage => remove_image(docker, &r.id).await.map_err(|e| failure("removing an image", e)),
        ResourceKind::Directory => Err(Error::InvalidArgument("a directory is not a docker resource".into())),
    }
}

/// Sandbox ids whose container of `owner` stopped or vanished, as the engine reports it. Ends
/// when the engine goes away (the caller reconnects).
pub(crate) fn container_exits(docker: &Docker, owner: &str) -> impl Stream<Item = Result<String>> + Send + 'static {
    let mut filters = filters(Some(owner));
    filters.insert("type", vec!["container".into()]);
    filters.insert("event", vec!["die".into(), "destroy".into()]);
    let opts = EventsOptionsBuilder::default().filters(&filters).build();
    docker.events(Some(opts)).filter_map(|e| async move {
        match e {
            Ok(ev) => ev.actor.and_then(|a| a.attributes).and_then(|mut attrs| attrs.remove(LABEL_SANDBOX)).map(Ok),
            Err(e) => Some(Err(failure("watching engine events", e))),
        }
    })
}

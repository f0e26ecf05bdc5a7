//! Bringing the registry and the engine back in step when the daemon starts (after a clean stop or
//! a `kill -9`): sessions are taken back or marked `lost`, and engine resources that carry this
//! daemon's owner label but belong to no active session are removed. Resources of other owners
//! (another daemon's state dir, a Node or Python program) are never touched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use dagger_sandbox::{Sandbox, LABEL_OWNER, LABEL_SANDBOX};
use dagger_sandbox_store::{Provider, Session};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::sessions::{Sessions, REASON_LOST};

/// How many sessions are taken back at once.
const CONCURRENCY: usize = 8;

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sessions taken back and usable.
    pub reattached: usize,
    /// Sessions marked terminated (`lost`, or `failed` when their service did not come back).
    pub lost: usize,
    /// Containers of this daemon with no active session, removed.
    pub orphan_containers: usize,
    /// Snapshot images of this daemon with no active session, removed.
    pub orphan_images: usize,
}

/// Takes back every active session and removes this daemon's orphaned engine resources.
pub async fn reconcile(sessions: &Arc<Sessions>) -> Result<ReconcileReport, ApiError> {
    let mut report = ReconcileReport::default();
    let rows = sessions.list(false).await?;
    let outcomes: Vec<bool> = futures_util::stream::iter(rows)
        .map(|s| {
            let sessions = sessions.clone();
            async move { take_back(&sessions, &s).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    report.reattached = outcomes.iter().filter(|ok| **ok).count();
    report.lost = outcomes.len() - report.reattached;
    if let Some(docker) = sessions.docker() {
        let held: HashSet<String> = sessions.live_ids().into_iter().collect();
        match sweep_docker(docker, sessions.owner(), &held).await {
            Ok((c, i)) => {
                report.orphan_containers = c;
                report.orphan_images = i;
            }
            Err(e) => tracing::warn!("could not list this daemon's containers to remove orphans: {e}"),
        }
    }
    tracing::info!(
        reattached = report.reattached,
        lost = report.lost,
        orphan_containers = report.orphan_containers,
        orphan_images = report.orphan_images,
        "reconciled sessions with the engine"
    );
    Ok(report)
}

/// Takes one session back; on failure removes what is left of it and marks it `lost`.
async fn take_back(sessions: &Arc<Sessions>, s: &Session) -> bool {
    let attempt = async {
        let config = Sessions::config_of(s).ok_or_else(|| {
            ApiError::Internal("its metadata holds no sandbox config (made by another program?)".into())
        })?;
        let resource =
            s.container_id.as_deref().ok_or_else(|| ApiError::Internal("it has no engine resource".into()))?;
        if s.provider == Provider::Dagger {
            return Err(ApiError::Internal("dagger sandboxes cannot be taken back".into()));
        }
        let sandbox = Sandbox::reattach(config, &s.id, resource).await?;
        if let Err(e) = sessions.adopt(s, sandbox.clone()).await {
            // Its service did not come back: free it rather than hold a half-working session.
            let _ = sandbox.close().await;
            return Err(e);
        }
        Ok(())
    };
    match attempt.await {
        Ok(()) => {
            tracing::info!(session = %s.id, "session taken back");
            true
        }
        Err(e) => {
            tracing::warn!(session = %s.id, "session could not be taken back, marking it lost: {e}");
            if let Err(e) = sessions.stop(&s.id, REASON_LOST).await {
                tracing::warn!(session = %s.id, "marking the session lost failed: {e}");
            }
            false
        }
    }
}

fn owner_filter(owner: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![format!("{LABEL_OWNER}={owner}")])])
}

/// Removes containers and images labelled with `owner` whose sandbox is not in `held`.
async fn sweep_docker(docker: &Docker, owner: &str, held: &HashSet<String>) -> Result<(usize, usize), String> {
    let filters = owner_filter(owner);
    let list = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .map_err(|e| e.to_string())?;
    let mut containers = 0;
    for c in list {
        let labels = c.labels.unwrap_or_default();
        // The filter already matched; checking again guards against an engine that ignores it.
        if labels.get(LABEL_OWNER).map(String::as_str) != Some(owner) {
            continue;
        }
        let sandbox = labels.get(LABEL_SANDBOX).cloned().unwrap_or_default();
        if held.contains(&sandbox) {
            continue;
        }
        let Some(id) = c.id else { continue };
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match docker.remove_container(&id, Some(opts)).await {
            Ok(()) => {
                tracing::info!(container = %id, sandbox, "removed a container of this daemon with no active session");
                containers += 1;
            }
            Err(e) => tracing::warn!(container = %id, "removing an orphaned container failed: {e}"),
        }
    }
    let images = docker
        .list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build()))
        .await
        .map_err(|e| e.to_string())?;
    let mut removed_images = 0;
    let mut images: Vec<_> = images
        .into_iter()
        .filter(|i| {
            i.labels.get(LABEL_OWNER).map(String::as_str) == Some(owner)
                && !i.labels.get(LABEL_SANDBOX).is_some_and(|s| held.contains(s))
        })
        .collect();
    // Children before parents: newer snapshots first.
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    for img in images {
        let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
        if docker.remove_image(&img.id, Some(opts), None).await.is_ok() {
            removed_images += 1;
        }
    }
    Ok((containers, removed_images))
}

/// Removes one container if it carries this daemon's owner label; a missing container is fine.
pub async fn remove_owned_container(docker: &Docker, owner: &str, container: &str) {
    let inspect = docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>);
    let labels = match inspect.await {
        Ok(info) => info.config.and_then(|c| c.labels).unwrap_or_default(),
        Err(_) => return,
    };
    if labels.get(LABEL_OWNER).map(String::as_str) != Some(owner) {
        tracing::warn!(container, "not removing a container another owner labelled");
        return;
    }
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    if let Err(e) = docker.remove_container(container, Some(opts)).await {
        tracing::warn!(container, "removing the container failed: {e}");
    }
}

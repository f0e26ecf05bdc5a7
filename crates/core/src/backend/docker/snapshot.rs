//! Docker snapshots: a commit of the sandbox's container into `dagger-sandbox/snapshot:<id>`,
//! labelled as ours and carrying its record in a label, so the image is the record and every
//! process on the engine lists the same snapshots. A commit copies the container's labels and env
//! into the image; ours are overwritten (the owner label, so no sweep judges the image by the
//! process that took it; secret env values, blanked so they are not baked into the image).

use std::collections::HashMap;

use bollard::models::ContainerConfig;
use bollard::query_parameters::{CommitContainerOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::Docker;

use super::{describe, remove_image, status, DockerEngine};
use crate::error::{Error, Result};
use crate::owner::{host_id, LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, LABEL_SANDBOX};
use crate::snapshot::{Record, Snapshot, LABEL_SNAPSHOT, LABEL_SNAPSHOT_RECORD};

/// The repository snapshot images are tagged in; the tag is the snapshot id.
pub(crate) const SNAPSHOTS_REPO: &str = "dagger-sandbox/snapshot";

/// The owner label value of a snapshot image: no process owns it, so no sweep may judge it.
const SNAPSHOT_OWNER: &str = "snapshot";

/// The image reference of snapshot `id`.
pub(crate) fn image_ref(id: &str) -> String {
    format!("{SNAPSHOTS_REPO}:{id}")
}

/// The labels of a snapshot image (they replace what the commit copies from the container).
fn labels(record: &Record) -> Result<HashMap<String, String>> {
    let json = serde_json::to_string(record).map_err(|e| Error::io("encoding a snapshot record", e.into()))?;
    Ok(HashMap::from([
        (LABEL_MANAGED.to_string(), "1".to_string()),
        (LABEL_SNAPSHOT.to_string(), record.snap.id.clone()),
        (LABEL_SNAPSHOT_RECORD.to_string(), json),
        (LABEL_OWNER.to_string(), SNAPSHOT_OWNER.to_string()),
        (LABEL_SANDBOX.to_string(), String::new()),
        (LABEL_HOST.to_string(), host_id().to_string()),
    ]))
}

/// The image env: the kept values, and every withheld secret blanked. A commit appends the
/// container's variables that this list does not name, so a secret must be named to be left out.
fn image_env(record: &Record) -> Vec<String> {
    let mut env: Vec<String> = record.snap.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(record.snap.secret_env.iter().map(|k| format!("{k}=")));
    env
}

impl DockerEngine {
    /// Commits the container (paused, so a running command cannot tear it) as snapshot `record`.
    pub(crate) async fn take_snapshot(&self, mut record: Record) -> Result<Snapshot> {
        // The commit pauses the container: an agent exec still being started would deadlock it.
        self.settle_agent().await;
        let reference = image_ref(&record.snap.id);
        let opts = CommitContainerOptionsBuilder::default()
            .container(&self.container)
            .repo(SNAPSHOTS_REPO)
            .tag(&record.snap.id)
            .pause(true)
            .build();
        let config = ContainerConfig {
            labels: Some(labels(&record)?),
            env: Some(image_env(&record)),
            working_dir: Some(record.snap.workdir.clone()),
            ..Default::default()
        };
        self.docker.commit_container(opts, config).await.map_err(|e| self.err("committing the snapshot", e))?;
        match self.docker.inspect_image(&reference).await {
            Ok(info) => record.snap.size = info.size.map(|s| s.max(0) as u64),
            Err(e) => tracing::debug!(snapshot = %record.snap.id, "no size for the snapshot: {}", describe(&e)),
        }
        Ok(record.into_snapshot(reference))
    }
}

/// The snapshot an image stands for: it must carry our tag for its id and a readable record.
fn from_image(id: &str, tags: &[String], record: Option<&String>, size: i64) -> Option<Snapshot> {
    let reference = image_ref(id);
    if !tags.contains(&reference) {
        return None; // deleted, kept only until the sandboxes made from it are gone
    }
    let mut record: Record = match serde_json::from_str(record?) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(snapshot = id, "skipping a snapshot image with an unreadable record label: {e}");
            return None;
        }
    };
    record.snap.size = Some(size.max(0) as u64);
    Some(record.into_snapshot(reference))
}

/// The snapshot images with their label filter.
async fn images(docker: &Docker) -> Result<Vec<bollard::models::ImageSummary>> {
    let filters = HashMap::from([("label", vec![LABEL_SNAPSHOT.to_string()])]);
    let opts = ListImagesOptionsBuilder::default().filters(&filters).build();
    docker.list_images(Some(opts)).await.map_err(|e| Error::engine("", "listing snapshot images", describe(&e)))
}

/// Every Docker snapshot; `ENGINE_UNAVAILABLE` when Docker does not answer.
pub(crate) async fn list() -> Result<Vec<Snapshot>> {
    let docker = super::inventory::client().await?;
    Ok(images(&docker)
        .await?
        .into_iter()
        .filter_map(|i| {
            let id = i.labels.get(LABEL_SNAPSHOT)?;
            from_image(id, &i.repo_tags, i.labels.get(LABEL_SNAPSHOT_RECORD), i.size)
        })
        .collect())
}

/// Docker snapshot `id`, `None` when the engine has none; `ENGINE_UNAVAILABLE` when Docker does not answer.
pub(crate) async fn find(id: &str) -> Result<Option<Snapshot>> {
    let docker = super::inventory::client().await?;
    match docker.inspect_image(&image_ref(id)).await {
        Ok(info) => {
            let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            let tags = info.repo_tags.unwrap_or_default();
            let size = info.size.unwrap_or(0);
            Ok(labels
                .get(LABEL_SNAPSHOT)
                .filter(|l| *l == id)
                .and_then(|_| from_image(id, &tags, labels.get(LABEL_SNAPSHOT_RECORD), size)))
        }
        Err(e) if status(&e) == Some(404) => Ok(None),
        Err(e) => Err(Error::engine("", "inspecting a snapshot image", describe(&e))),
    }
}

/// Deletes snapshot `id`: its tag goes now (the image with it, unless a sandbox made from it still
/// uses it), then whatever deleted snapshots nothing uses any more.
pub(crate) async fn remove(id: &str) -> Result<()> {
    let docker = super::inventory::client().await?;
    remove_image(&docker, &image_ref(id))
        .await
        .map_err(|e| Error::engine("", format!("deleting snapshot {id}"), describe(&e)))?;
    prune_deleted(&docker).await;
    Ok(())
}

/// Removes images of deleted snapshots (untagged, labelled) that no container uses any more.
/// Best effort: one still in use stays until the sandbox using it closes (its close calls this).
pub(crate) async fn prune_deleted(docker: &Docker) {
    let Ok(all) = images(docker).await else { return };
    for i in all {
        let Some(id) = i.labels.get(LABEL_SNAPSHOT) else { continue };
        if i.repo_tags.contains(&image_ref(id)) {
            continue;
        }
        // Not forced: an image a stopped sandbox still starts from must stay.
        let opts = RemoveImageOptionsBuilder::default().force(false).build();
        match docker.remove_image(&i.id, Some(opts), None).await {
            Ok(_) => tracing::debug!(snapshot = %id, image = %i.id, "removed a deleted snapshot's image"),
            Err(e) if matches!(status(&e), Some(404 | 409)) => {}
            Err(e) => tracing::warn!(snapshot = %id, "removing a deleted snapshot's image failed: {}", describe(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let snap = Snapshot {
            id: "snap-0123456789ab".into(),
            name: Some("base".into()),
            backend: crate::BackendKind::Docker,
            created_at: chrono::Utc::now(),
            size: None,
            workdir: "/workspace/app".into(),
            env: [("CI".to_string(), "1".to_string())].into(),
            secret_env: vec!["NPM_TOKEN".into()],
            image: Some("busybox".into()),
            source: "sbx-0123456789ab".into(),
            engine_ref: String::new(),
        };
        Record { snap, dagger_id: None }
    }

    #[test]
    fn secrets_are_blanked_in_the_image_env_and_absent_from_labels() {
        let r = record();
        assert_eq!(image_env(&r), vec!["CI=1".to_string(), "NPM_TOKEN=".to_string()]);
        let l = labels(&r).unwrap();
        assert_eq!(l[LABEL_OWNER], SNAPSHOT_OWNER);
        assert_eq!(l[LABEL_SNAPSHOT], r.snap.id);
        assert!(l[LABEL_SNAPSHOT_RECORD].contains("\"NPM_TOKEN\""), "the name is kept");
    }

    #[test]
    fn only_a_tagged_image_with_a_record_is_a_snapshot() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        let tags = vec![image_ref(&r.snap.id)];
        let s = from_image(&r.snap.id, &tags, Some(&json), 1234).unwrap();
        assert_eq!(
            (s.size, s.engine_ref.as_str(), s.workdir.as_str()),
            (Some(1234), tags[0].as_str(), "/workspace/app")
        );
        assert!(from_image(&r.snap.id, &[], Some(&json), 1).is_none(), "an untagged image is a deleted snapshot");
        assert!(from_image(&r.snap.id, &tags, None, 1).is_none());
        assert!(from_image(&r.snap.id, &tags, Some(&"{".to_string()), 1).is_none());
    }
}

//! Dagger snapshots: the container value's id, which the engine can evaluate again in any session
//! (it names the value's whole call chain; the engine's cache keeps the data until its GC), kept in
//! a record file in the private snapshots directory. Not verified against a live engine in this
//! repository's CI (see docs/DAGGER.md).

use std::sync::Arc;

use dagger_sdk::{Container, Id};

use super::connect::Session;
use super::{sdk, DaggerEngine};
use crate::config::ResolvedConfig;
use crate::error::{Error, Result};
use crate::snapshot::records::Partial;
use crate::snapshot::{Record, Snapshot};

impl DaggerEngine {
    /// Settles the chain and records the value's id as snapshot `record`.
    pub(crate) async fn take_snapshot(&self, mut record: Record) -> Result<Snapshot> {
        let inner = &self.inner;
        inner.check_open()?;
        // Under the mutation lock, synced: the id names a settled value, not pending calls.
        let mut chain = inner.chain.clone().lock_owned().await;
        let id = sdk(&inner.id, "taking a snapshot", inner.opts.call_timeout, async move {
            chain.checkpoint().await?;
            chain.value().id().await
        })
        .await?;
        record.dagger_id = Some(id.0);
        write_record(record).await
    }

    /// A new sandbox `id` on the value snapshot id `container` names.
    pub(crate) async fn create_from(
        session: Arc<Session>,
        cfg: &ResolvedConfig,
        id: &str,
        container: String,
    ) -> Result<Self> {
        let base: Container = session.conn.r#ref(Id(container));
        Self::create_on(session, cfg, id, base).await
    }
}

/// Writes a Dagger snapshot's record (the id may be large: it is a file, never a label).
async fn write_record(record: Record) -> Result<Snapshot> {
    tokio::task::spawn_blocking(move || {
        let partial = Partial::begin(&record.snap.id)?;
        partial.commit(&record)?;
        Ok(record.into_snapshot("dagger".into()))
    })
    .await
    .map_err(|e| Error::io("recording a snapshot", std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_record_keeps_the_value_id_and_no_secret_value() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var(crate::snapshot::SNAPSHOT_DIR_ENV, dir.path().join("snaps"));
        let record = Snapshot {
            id: crate::snapshot::new_id(),
            name: None,
            backend: crate::BackendKind::Dagger,
            created_at: chrono::Utc::now(),
            size: None,
            workdir: "/workspace".into(),
            env: [("CI".to_string(), "1".to_string())].into(),
            secret_env: vec!["NPM_TOKEN".into()],
            image: Some("alpine".into()),
            source: "sbx-0123456789ab".into(),
            engine_ref: String::new(),
        };
        let record = Record { snap: record, dagger_id: Some("ctr-id-from-the-engine".into()) };
        let snap = write_record(record.clone()).await.unwrap();
        assert_eq!(snap.engine_ref, "dagger");
        let back = crate::snapshot::records::read(&record.snap.id).unwrap();
        assert_eq!(back.dagger_id.as_deref(), Some("ctr-id-from-the-engine"));
        let text =
            std::fs::read_to_string(dir.path().join("snaps").join(&record.snap.id).join("snapshot.json")).unwrap();
        assert!(text.contains("NPM_TOKEN"), "the withheld name is kept: {text}");
        let listed = crate::snapshot::records::list().await.unwrap();
        assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![record.snap.id.as_str()]);
        crate::snapshot::records::remove(&record.snap.id).await.unwrap();
        assert!(crate::snapshot::records::list().await.unwrap().is_empty());
        std::env::remove_var(crate::snapshot::SNAPSHOT_DIR_ENV);
    }
}

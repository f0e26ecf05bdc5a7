//! Snapshots for Node: `snapshot()` on a sandbox, `NativeSandbox.fromSnapshot()`, and the
//! `listSnapshots` / `inspectSnapshot` / `deleteSnapshot` functions that `index.js` exposes as
//! statics of `DaggerSandbox`.

use std::collections::HashMap;

use dagger_sandbox::{Sandbox, Snapshot};
use napi_derive::napi;

use crate::error::to_napi;
use crate::options::SandboxOptions;
use crate::sandbox::NativeSandbox;

/// A saved sandbox state (files, env, workdir) that sandboxes can start from.
#[napi(object)]
pub struct SnapshotInfo {
    /// The snapshot id, `snap-` and 12 hex digits.
    pub id: String,
    /// The unique name given at create, if any; usable instead of the id.
    pub name: Option<String>,
    /// The backend it was taken on (sandboxes made from it run there).
    #[napi(ts_type = "'dagger' | 'docker' | 'local'")]
    pub backend: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Its size in bytes where the engine says cheaply; absent on Dagger.
    pub size: Option<f64>,
    /// The working directory it keeps.
    pub workdir: String,
    /// The env it keeps, without secret values.
    pub env: HashMap<String, String>,
    /// Names whose values were withheld as secrets (`secretPatterns`): pass them to `fromSnapshot`.
    pub secret_env: Vec<String>,
    /// The image the sandbox was created from (absent on local).
    pub image: Option<String>,
    /// The id of the sandbox it was taken from.
    pub source: String,
    /// Where the engine keeps it: a Docker image reference, the local copy's directory, or `dagger`.
    pub engine_ref: String,
}

impl From<Snapshot> for SnapshotInfo {
    fn from(s: Snapshot) -> Self {
        SnapshotInfo {
            id: s.id,
            name: s.name,
            backend: s.backend.as_str().to_string(),
            created_at: s.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            size: s.size.map(|n| n as f64),
            workdir: s.workdir,
            env: s.env.into_iter().collect(),
            secret_env: s.secret_env,
            image: s.image,
            source: s.source,
            engine_ref: s.engine_ref,
        }
    }
}

#[napi]
impl NativeSandbox {
    /// Saves the files, env and workdir as a snapshot named `name` (unique) if given; secret env
    /// values are kept by name only. The sandbox keeps running.
    #[napi(catch_unwind)]
    pub async fn snapshot(&self, name: Option<String>) -> napi::Result<SnapshotInfo> {
        self.sb.snapshot(name.as_deref()).await.map(SnapshotInfo::from).map_err(|e| self.err(e))
    }

    /// A new sandbox from the snapshot `reference` (id or name); `options` without image or template.
    #[napi(factory, catch_unwind)]
    pub async fn from_snapshot(reference: String, options: Option<SandboxOptions>) -> napi::Result<NativeSandbox> {
        let cfg = options.unwrap_or_default().into_config()?;
        let sb = Sandbox::from_snapshot(&reference, cfg).await.map_err(to_napi)?;
        Ok(NativeSandbox { sb })
    }
}

/// Every snapshot on the engines that answer, oldest first.
#[napi]
pub async fn list_snapshots() -> napi::Result<Vec<SnapshotInfo>> {
    Ok(Snapshot::list().await.map_err(to_napi)?.into_iter().map(SnapshotInfo::from).collect())
}

/// The snapshot `reference` (id or name) names; `NOT_FOUND` when none does.
#[napi]
pub async fn inspect_snapshot(reference: String) -> napi::Result<SnapshotInfo> {
    Snapshot::inspect(&reference).await.map(SnapshotInfo::from).map_err(to_napi)
}

/// Deletes a snapshot and its data; returns what was deleted. Sandboxes made from it keep running.
#[napi]
pub async fn delete_snapshot(reference: String) -> napi::Result<SnapshotInfo> {
    Snapshot::remove(&reference).await.map(SnapshotInfo::from).map_err(to_napi)
}

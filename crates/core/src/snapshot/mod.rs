//! Snapshots: a sandbox's filesystem, env and workdir saved under an id (and an optional name) so
//! later sandboxes can start from it ([`crate::Sandbox::snapshot`], [`crate::Sandbox::from_snapshot`]).
//!
//! Where a snapshot lives depends on the backend: on Docker it is a committed image labelled as
//! ours (the image and its labels are the record, so every process on the engine sees it); on the
//! local backend a copy of the sandbox directory plus a record file in the private snapshots
//! directory ([`snapshots_dir`]); on Dagger a record file holding the container value's id (the
//! engine keeps the data). Snapshots have no owning process: the orphan sweeps never remove them;
//! only [`Snapshot::remove`] does.
//!
//! Secrets: env values whose names match the sandbox's `secretPatterns` are never written into a
//! snapshot (not in an image label, not in the image's env, not in a record file). The snapshot
//! keeps their names ([`Snapshot::secret_env`]); a sandbox made from it gets them back only from
//! the config passed to [`crate::Sandbox::from_snapshot`], and is warned about each one it lacks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use globset::GlobSet;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::config::build_globset;
use crate::error::{Error, Result};

pub(crate) mod records;

pub use records::{snapshots_dir, SNAPSHOT_DIR_ENV};

/// Label on a snapshot image naming its snapshot id (`snap-` and 12 hex digits).
pub const LABEL_SNAPSHOT: &str = "dev.dagger-sandbox.snapshot";
/// Label on a snapshot image holding the rest of its record as JSON (name, env, workdir, ...).
pub const LABEL_SNAPSHOT_RECORD: &str = "dev.dagger-sandbox.snapshot.record";

/// A saved sandbox state that sandboxes can be started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The snapshot id, `snap-` and 12 hex digits.
    pub id: String,
    /// The name given at create, unique among snapshots; a reference can use it instead of the id.
    pub name: Option<String>,
    /// The backend it was taken on; sandboxes made from it run there too.
    pub backend: BackendKind,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Its size in bytes where the engine says cheaply (a Docker image's size, a local copy's
    /// bytes); `None` on Dagger.
    pub size: Option<u64>,
    /// The working directory of the sandbox when it was taken.
    pub workdir: String,
    /// The sandbox env when it was taken, without the secret values (see [`Self::secret_env`]).
    pub env: BTreeMap<String, String>,
    /// Names of env variables whose values were withheld as secrets (they match `secretPatterns`).
    pub secret_env: Vec<String>,
    /// The image the sandbox was created from (`None` on local).
    pub image: Option<String>,
    /// The id of the sandbox it was taken from.
    pub source: String,
    /// Where the engine keeps it: the image reference (docker), the copy's directory (local) or
    /// `dagger` (the container id, kept in the record file, can be many kilobytes).
    #[serde(default)]
    pub engine_ref: String,
}

/// A snapshot's record as kept by the engine (a docker label) or in a record file: the snapshot,
/// plus the Dagger value's id (too large for listings, so never part of [`Snapshot`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    #[serde(flatten)]
    pub snap: Snapshot,
    /// Dagger only: the container value's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dagger_id: Option<String>,
}

impl Record {
    /// The public view, with where the engine keeps it.
    pub(crate) fn into_snapshot(self, engine_ref: String) -> Snapshot {
        Snapshot { engine_ref, ..self.snap }
    }
}

/// A new snapshot id.
pub(crate) fn new_id() -> String {
    format!("snap-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Whether `s` has the shape of a snapshot id.
pub(crate) fn is_id(s: &str) -> bool {
    s.len() == 17 && s.starts_with("snap-") && s[5..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Refuses a name that could not serve as a reference: 1-64 of `A-Za-z0-9._-`, starting with a
/// letter or digit, and not shaped like an id.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !first_ok || name.starts_with("snap-") {
        return Err(Error::InvalidArgument(format!(
            "snapshot name {name:?} must be 1-64 characters of A-Z a-z 0-9 . _ -, start with a letter or digit, \
             and not start with \"snap-\" (ids do)"
        )));
    }
    Ok(())
}

/// Splits `env` into what a snapshot may keep and the names of the secrets it must not.
pub(crate) fn split_secrets(
    env: &BTreeMap<String, String>,
    secret_patterns: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let secrets: GlobSet = build_globset("secretPatterns", secret_patterns)?;
    let mut kept = BTreeMap::new();
    let mut withheld = Vec::new();
    for (k, v) in env {
        if secrets.is_match(k) {
            withheld.push(k.clone());
        } else {
            kept.insert(k.clone(), v.clone());
        }
    }
    Ok((kept, withheld))
}

/// `NOT_FOUND` for a reference that names no snapshot.
pub(crate) fn not_found(reference: &str) -> Error {
    Error::not_found("", "snapshot", reference.to_string())
}

impl Snapshot {
    /// Every snapshot on the engines that answer (Docker left out when it does not), oldest first.
    pub async fn list() -> Result<Vec<Snapshot>> {
        let mut all = match crate::backend::docker::snapshot::list().await {
            Ok(s) => s,
            Err(e) if e.code() == crate::ErrorCode::EngineUnavailable => {
                tracing::debug!("snapshots: docker left out: {e}");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        all.extend(records::list().await?);
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// The snapshot `reference` names (its id, or its name); `NOT_FOUND` when none does, and
    /// `INVALID_ARGUMENT` when a name matches more than one (made at the same time elsewhere).
    pub async fn inspect(reference: &str) -> Result<Snapshot> {
        if reference.trim().is_empty() {
            return Err(Error::InvalidArgument("a snapshot reference (id or name) is required".into()));
        }
        if is_id(reference) {
            // By id: one look in the record directory, then one question to Docker; no listing.
            let id = reference.to_string();
            let local = tokio::task::spawn_blocking(move || records::read(&id))
                .await
                .map_err(|e| Error::io("reading a snapshot record", std::io::Error::other(e)))?;
            match local {
                Ok(r) => {
                    let at = records::engine_ref(&r);
                    return Ok(r.into_snapshot(at));
                }
                Err(e) if e.code() != crate::ErrorCode::NotFound => return Err(e),
                Err(_) => {}
            }
            return match crate::backend::docker::snapshot::find(reference).await {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(not_found(reference)),
                Err(e) if e.code() == crate::ErrorCode::EngineUnavailable => Err(not_found(reference)),
                Err(e) => Err(e),
            };
        }
        let all = Snapshot::list().await?;
        if let Some(s) = all.iter().find(|s| s.id == reference) {
            return Ok(s.clone());
        }
        let named: Vec<&Snapshot> = all.iter().filter(|s| s.name.as_deref() == Some(reference)).collect();
        match named.as_slice() {
            [] => Err(not_found(reference)),
            [one] => Ok((*one).clone()),
            many => Err(Error::InvalidArgument(format!(
                "the name {reference:?} names {} snapshots ({}); use an id",
                many.len(),
                many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Deletes the snapshot `reference` names, leaving nothing of it behind (a Docker image still
    /// used by a running sandbox made from it is untagged now and removed when that sandbox
    /// closes). Sandboxes made from it keep running. Returns what was deleted.
    pub async fn remove(reference: &str) -> Result<Snapshot> {
        let snap = Snapshot::inspect(reference).await?;
        match snap.backend {
            BackendKind::Docker => crate::backend::docker::snapshot::remove(&snap.id).await?,
            BackendKind::Local | BackendKind::Dagger => records::remove(&snap.id).await?,
        }
        tracing::info!(snapshot = %snap.id, name = ?snap.name, backend = %snap.backend, "snapshot deleted");
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["base", "v1.2", "after_install", "A-1"] {
            validate_name(good).unwrap();
        }
        for bad in ["", "-x", "snap-0123456789ab", "a b", "a/b", &"x".repeat(65)] {
            assert_eq!(validate_name(bad).unwrap_err().code(), crate::ErrorCode::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn ids_have_one_shape() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        assert!(!is_id("snap-xyz"));
        assert!(!is_id("sbx-0123456789ab"));
    }

    #[test]
    fn secret_values_are_split_off() {
        let env: BTreeMap<String, String> =
            [("NPM_TOKEN", "s3cret"), ("CI", "1"), ("DB_PASSWORD", "pw")].map(|(k, v)| (k.into(), v.into())).into();
        let pats: Vec<String> = crate::config::DEFAULT_SECRET_PATTERNS.iter().map(|s| s.to_string()).collect();
        let (kept, withheld) = split_secrets(&env, &pats).unwrap();
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![("CI".to_string(), "1".to_string())]);
        assert_eq!(withheld, vec!["DB_PASSWORD".to_string(), "NPM_TOKEN".to_string()]);
        let (kept, withheld) = split_secrets(&env, &[]).unwrap();
        assert_eq!(kept.len(), 3);
        assert!(withheld.is_empty());
    }
}

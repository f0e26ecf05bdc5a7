//! Taking a snapshot of a sandbox and starting a sandbox from one (see [`crate::snapshot`]).

use chrono::Utc;

use super::Sandbox;
use crate::backend::BackendKind;
use crate::config::{BackendChoice, SandboxConfig};
use crate::error::{Error, Result};
use crate::snapshot::{new_id, split_secrets, validate_name, Record, Snapshot};

impl Sandbox {
    /// Saves the sandbox's files, env and workdir as a snapshot, named `name` when given (names
    /// are unique). Env values matching `secretPatterns` are not saved, only their names. The
    /// sandbox keeps running; the snapshot outlives it until [`Snapshot::remove`].
    pub async fn snapshot(&self, name: Option<&str>) -> Result<Snapshot> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        if let Some(name) = name {
            validate_name(name)?;
            if let Some(taken) = Snapshot::list().await?.into_iter().find(|s| s.name.as_deref() == Some(name)) {
                return Err(Error::InvalidArgument(format!(
                    "a snapshot named {name:?} already exists ({}); delete it or choose another name",
                    taken.id
                )));
            }
        }
        let state = self.state().clone();
        let (env, secret_env) = split_secrets(&state.env, &self.inner.cfg.secret_patterns)?;
        let snap = Snapshot {
            id: new_id(),
            name: name.map(str::to_string),
            backend: self.backend(),
            created_at: Utc::now(),
            size: None,
            workdir: state.workdir.to_string(),
            env,
            secret_env,
            image: self.image().map(str::to_string),
            source: self.id().to_string(),
            engine_ref: String::new(),
        };
        let record = Record { snap, dagger_id: None };
        let snap = self.guard(self.inner.engine.snapshot(record)).await?;
        tracing::info!(sandbox = %self.id(), snapshot = %snap.id, name = ?snap.name, "snapshot taken");
        Ok(snap)
    }

    /// A new sandbox with the files, env and workdir of the snapshot `reference` names (id or
    /// name), on the snapshot's backend. `config` gives the rest (limits, ports, labels, ...); its
    /// `env` is added over the snapshot's and supplies the withheld secrets; a `workdir` in it wins.
    /// `backend` must be `auto` or the snapshot's, and `image`/`template` must be unset (the
    /// snapshot is the image): otherwise `INVALID_ARGUMENT`. A secret the snapshot withheld and
    /// `config` does not give is reported in [`Sandbox::warnings`].
    pub async fn from_snapshot(reference: &str, config: SandboxConfig) -> Result<Sandbox> {
        let snap = Snapshot::inspect(reference).await?;
        let mut config = config;
        let wanted = match snap.backend {
            BackendKind::Docker => BackendChoice::Docker,
            BackendKind::Local => BackendChoice::Local,
            BackendKind::Dagger => BackendChoice::Dagger,
        };
        if config.backend != BackendChoice::Auto && config.backend != wanted {
            return Err(Error::InvalidArgument(format!(
                "snapshot {} was taken on the {} backend; a sandbox from it runs there (leave backend unset)",
                snap.id, snap.backend
            )));
        }
        if config.image.is_some() || config.template.is_some() {
            return Err(Error::InvalidArgument(format!(
                "a sandbox from snapshot {} starts from the snapshot: leave image and template unset",
                snap.id
            )));
        }
        config.backend = wanted;
        config.image = match snap.backend {
            BackendKind::Docker => Some(snap.engine_ref.clone()),
            _ => snap.image.clone(),
        };
        config.workdir.get_or_insert_with(|| snap.workdir.clone());
        let mut env = snap.env.clone();
        env.append(&mut config.env);
        config.env = env;
        let warnings: Vec<String> = snap
            .secret_env
            .iter()
            .filter(|k| !config.env.contains_key(*k))
            .map(|k| {
                format!(
                    "{k} was not restored: snapshot {} keeps no secret values; pass it in the config's env",
                    snap.id
                )
            })
            .collect();
        let sb = Self::create_resolved(config.resolve()?, Some(snap.clone()), warnings).await?;
        tracing::info!(sandbox = %sb.id(), snapshot = %snap.id, "sandbox made from a snapshot");
        Ok(sb)
    }
}

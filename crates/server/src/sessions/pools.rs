//! Warm pools per template (`serve --pool node=2`): sandboxes of a template's plain config started
//! ahead, so a create that asks for nothing more than the template gets one at once. A create
//! whose config differs in anything (image, env, ports, project, CA, backend) is created fresh.
//! Pooled sandboxes carry the daemon's owner label: removed on shutdown, and swept by the next
//! start's reconcile after a crash (they belong to no session).

use std::sync::Arc;

use dagger_sandbox::{BackendChoice, Pool, Sandbox, SandboxConfig};

use super::Sessions;
use crate::error::ApiError;

impl Sessions {
    /// The config a create of template `name` with no other field gets (see `create_now`).
    fn plain_config(&self, name: &str) -> Option<SandboxConfig> {
        let tpl = self.templates.get(name)?;
        Some(
            SandboxConfig::new()
                .backend(BackendChoice::Auto)
                .workdir(&tpl.working_directory)
                .owner(&self.owner)
                .fallback(false)
                .image(&tpl.image),
        )
    }

    /// Starts a pool of `size` sandboxes for each named template; an unknown template is an error.
    pub fn start_pools(&self, pools: &[(String, usize)]) -> Result<(), ApiError> {
        let mut held = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        for (name, size) in pools {
            let config = self.plain_config(name).ok_or_else(|| {
                ApiError::from(dagger_sandbox::Error::InvalidArgument(format!(
                    "--pool: unknown template {name:?}; known: {}",
                    self.templates.names().join(", ")
                )))
            })?;
            held.push(Pool::start(config, *size)?);
        }
        Ok(())
    }

    /// A sandbox for `config`: from a pool of exactly this config when one has one ready, else new.
    pub(super) async fn sandbox_for(&self, config: &SandboxConfig) -> Result<Sandbox, ApiError> {
        let pool: Option<Arc<Pool>> =
            self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|p| p.config() == config).cloned();
        if let Some(sb) = pool.and_then(|p| p.try_take()) {
            self.counters.pool_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(sb);
        }
        Ok(Sandbox::create(config.clone()).await?)
    }

    /// Stops the pools and removes the sandboxes they still hold.
    pub async fn shutdown_pools(&self) {
        let pools: Vec<Arc<Pool>> = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner()));
        for p in pools {
            p.shutdown().await;
        }
    }
}

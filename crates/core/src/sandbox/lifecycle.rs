//! Stop and resume: a stopped sandbox frees its CPU and memory (its container stopped, or its
//! processes killed) but keeps its filesystem, env and workdir; `resume` brings it back as it was.
//! Calls on a stopped sandbox fail with `STOPPED` instead of failing somewhere in the engine.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Sandbox, State};
use crate::backend;
use crate::config::SandboxConfig;
use crate::error::{Error, Result};

impl Sandbox {
    /// Whether the sandbox is stopped (see [`stop`](Self::stop)).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// `STOPPED` when the sandbox is stopped.
    pub(crate) fn check_running(&self) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Stopped { sandbox: self.inner.id.clone() });
        }
        Ok(())
    }

    /// Frees the sandbox's CPU and memory and keeps its files: on docker the container is stopped,
    /// on local its processes are killed (the directory stays), on dagger nothing runs between
    /// calls, so only the handle is marked. Commands still running (services included) are ended.
    /// Later calls fail with `STOPPED` until [`resume`](Self::resume); `close` still frees it all.
    /// Idempotent.
    pub async fn stop(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let _one = self.inner.lifecycle.lock().await;
        if self.is_stopped() {
            return Ok(());
        }
        // Marked first: a call that starts meanwhile gets `STOPPED`, not an engine error.
        self.inner.stopped.store(true, Ordering::Release);
        // A connected handle asks the sandbox's owner, which keeps its records in step.
        let stopped = match self.inner.owned.get() {
            Some(o) => o.owner.stop().await,
            None => self.inner.engine.stop().await,
        };
        if let Err(e) = stopped {
            self.inner.stopped.store(false, Ordering::Release);
            return Err(e);
        }
        tracing::info!(sandbox = %self.inner.id, "sandbox stopped");
        Ok(())
    }

    /// Brings a stopped sandbox back with the same files, env and workdir. Ports published on the
    /// host may get new numbers ([`ports`](Self::ports) says where). Idempotent: a running sandbox
    /// is left as it is.
    pub async fn resume(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let _one = self.inner.lifecycle.lock().await;
        if !self.is_stopped() {
            return Ok(());
        }
        match self.inner.owned.get() {
            Some(o) => o.owner.resume().await?,
            None => self.inner.engine.resume().await?,
        }
        self.inner.stopped.store(false, Ordering::Release);
        tracing::info!(sandbox = %self.inner.id, "sandbox resumed");
        Ok(())
    }

    /// Takes back a sandbox that was stopped (see [`reattach`](Self::reattach), which wants it
    /// running): the handle comes back stopped, ready for [`resume`](Self::resume). A resource
    /// found running is stopped, so the handle and the engine agree.
    pub async fn reattach_stopped(config: SandboxConfig, id: &str, resource_id: &str) -> Result<Sandbox> {
        let cfg = config.resolve()?;
        super::check_id(id)?;
        let (engine, mut env) = backend::reattach_any(&cfg, id, resource_id).await?;
        env.extend(cfg.env.clone());
        let state = State { workdir: cfg.workdir.clone(), env };
        let has_ca = cfg.ca.is_some();
        let sb = Sandbox::from_parts(id.to_string(), Arc::from(engine), cfg, state, None);
        if has_ca {
            sb.set_ca_env();
        }
        sb.set_cache_env(&mut Vec::new());
        sb.inner.engine.stop().await?;
        sb.inner.stopped.store(true, Ordering::Release);
        tracing::info!(sandbox = id, resource = resource_id, "stopped sandbox reattached");
        Ok(sb)
    }
}

//! Handles on a sandbox another process owns (the daemon): [`Sandbox::connect_owned`] drives its
//! engine resources directly, while stop, resume and delete go to the [`Owner`], so the owner's
//! records and the engine never disagree. Closing such a handle frees only the handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Sandbox;
use crate::backend;
use crate::config::SandboxConfig;
use crate::error::Result;

/// How often a connected handle tells its owner it is in use (which also resumes a sandbox the
/// owner stopped for being idle).
pub const OWNER_TOUCH_INTERVAL: Duration = Duration::from_secs(1);

/// The process that owns a sandbox a handle is connected to (the daemon, through its API).
#[async_trait]
pub trait Owner: Send + Sync {
    /// Stops the sandbox and keeps it (the owner records it as stopped).
    async fn stop(&self) -> Result<()>;
    /// Resumes the stopped sandbox.
    async fn resume(&self) -> Result<()>;
    /// Records that the handle is in use: resumes a sandbox the owner stopped for being idle,
    /// and is `STOPPED` when a user stopped it.
    async fn touch(&self) -> Result<()>;
    /// Deletes the sandbox for good.
    async fn delete(&self) -> Result<()>;
}

/// Ends a [`Sandbox::keep_alive`] task when dropped.
pub(super) struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a connected handle keeps about its owner.
pub(super) struct Owned {
    pub(super) owner: Arc<dyn Owner>,
    last_touch: std::sync::Mutex<Option<Instant>>,
}

impl Sandbox {
    /// A handle on sandbox `id` that another process owns (see [`Owner`]), from the resource id
    /// and config the owner reports, and whether the owner holds it `stopped` (the handle then
    /// starts stopped: calls are `STOPPED` until [`resume`](Self::resume)). Calls drive the engine
    /// directly; `stop`, `resume` and [`delete`](Self::delete) go to the owner, and `close` (or
    /// dropping every handle) frees only this handle. `NOT_FOUND` when the resource is gone (or,
    /// not `stopped`, does not run).
    pub async fn connect_owned(
        config: SandboxConfig,
        id: &str,
        resource_id: &str,
        owner: Arc<dyn Owner>,
        stopped: bool,
    ) -> Result<Sandbox> {
        let cfg = config.resolve()?;
        super::check_id(id)?;
        let (engine, env) = if stopped {
            backend::reattach_any(&cfg, id, resource_id).await?
        } else {
            backend::reattach(&cfg, id, resource_id).await?
        };
        let sb = Sandbox::from_reattached(id, engine, env, cfg);
        sb.detach();
        sb.inner.stopped.store(stopped, std::sync::atomic::Ordering::Release);
        let owned = Owned { owner, last_touch: std::sync::Mutex::new(Some(Instant::now())) };
        let _ = sb.inner.owned.set(owned);
        tracing::info!(sandbox = id, resource = resource_id, "connected to a sandbox another process owns");
        Ok(sb)
    }

    /// Whether another process owns this sandbox (a handle from [`connect_owned`](Self::connect_owned)).
    pub fn is_connected(&self) -> bool {
        self.inner.owned.get().is_some()
    }

    /// Frees the sandbox for good: for a connected handle the owner deletes it, otherwise this is
    /// [`close`](Self::close). The handle is closed either way.
    pub async fn delete(&self) -> Result<()> {
        if let Some(o) = self.inner.owned.get() {
            if !self.is_closed() {
                o.owner.delete().await?;
            }
        }
        self.close().await
    }

    /// While the returned guard lives (a long exec), tells the owner every
    /// [`OWNER_TOUCH_INTERVAL`] that the handle is in use, so an idle timeout never stops the
    /// sandbox under a call it does not see. `None` for a sandbox this process owns.
    pub(super) fn keep_alive(&self) -> Option<KeepAlive> {
        let owner = self.inner.owned.get()?.owner.clone();
        let rt = tokio::runtime::Handle::try_current().ok()?;
        Some(KeepAlive(rt.spawn(async move {
            loop {
                tokio::time::sleep(OWNER_TOUCH_INTERVAL).await;
                if let Err(e) = owner.touch().await {
                    tracing::debug!("telling the owner a call is running failed: {e}");
                }
            }
        })))
    }

    /// Tells the owner the handle is in use, at most every [`OWNER_TOUCH_INTERVAL`]: the owner
    /// then neither stops the sandbox for being idle nor leaves it stopped.
    pub(super) async fn touch_owner(&self) -> Result<()> {
        let Some(o) = self.inner.owned.get() else { return Ok(()) };
        {
            let mut last = o.last_touch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < OWNER_TOUCH_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let touched = o.owner.touch().await;
        if touched.is_err() {
            // Asked again at the next call rather than a second later.
            *o.last_touch.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        touched
    }
}

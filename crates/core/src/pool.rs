//! A warm pool: sandboxes of one config started ahead of time, so a create hands one out at once
//! instead of waiting for the engine. Each is handed out once and never taken back (a used sandbox
//! is never reset and reused: the next caller gets a fresh one); the pool refills in the
//! background and closes what it still holds on [`Pool::shutdown`] or drop. Pooled sandboxes carry
//! the owner label like any other, so a pool whose process died is swept by
//! [`cleanup_orphans`](crate::cleanup_orphans) (or by its daemon, for `daemon:` owners).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::SandboxConfig;
use crate::error::{Error, Result};
use crate::Sandbox;

/// The longest the refill waits after a failed create before trying again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long shutdown waits for a create in flight to finish, so it can close that sandbox too.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// Sandboxes of one config, created ahead of time.
pub struct Pool {
    config: SandboxConfig,
    size: usize,
    ready: Mutex<VecDeque<Sandbox>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    /// The refill loop; shutdown waits for it, so a sandbox it is making is closed too.
    refilling: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("size", &self.size).field("ready", &self.ready()).finish()
    }
}

impl Pool {
    /// Starts a pool of `size` sandboxes of `config` (checked first: a config that cannot be
    /// resolved is `INVALID_ARGUMENT` here, not a refill loop that fails forever). The refill runs
    /// on the current tokio runtime until [`shutdown`](Self::shutdown) or the last handle is dropped.
    pub fn start(config: SandboxConfig, size: usize) -> Result<Arc<Pool>> {
        config.resolve()?;
        if size == 0 {
            return Err(Error::InvalidArgument("a pool needs a size of at least 1".into()));
        }
        let pool = Arc::new(Pool {
            config,
            size,
            ready: Mutex::new(VecDeque::new()),
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
            refilling: Mutex::new(None),
        });
        let task = tokio::spawn(refill(Arc::downgrade(&pool), pool.stop.clone()));
        *pool.refilling.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(pool)
    }

    /// The config every pooled sandbox was created from.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// How many sandboxes are ready now.
    pub fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The ids of the sandboxes ready now (for status pages and tests).
    pub fn ready_ids(&self) -> Vec<String> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|s| s.id().to_string()).collect()
    }

    /// A ready sandbox, if there is one (the pool then starts a replacement).
    pub fn try_take(&self) -> Option<Sandbox> {
        let sb = self.ready.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        self.wake.notify_one();
        sb
    }

    /// A ready sandbox, or a fresh one created now when the pool is empty.
    pub async fn take(&self) -> Result<Sandbox> {
        match self.try_take() {
            Some(sb) => Ok(sb),
            None => Sandbox::create(self.config.clone()).await,
        }
    }

    /// Stops refilling and closes every sandbox still in the pool, and the one a refill was
    /// making (waited for up to a minute).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.refilling.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            if tokio::time::timeout(SHUTDOWN_WAIT, task).await.is_err() {
                tracing::warn!("a pooled sandbox was still being made at shutdown; its Drop frees it");
            }
        }
        let held: Vec<Sandbox> = self.ready.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for sb in held {
            if let Err(e) = sb.close().await {
                tracing::warn!(sandbox = sb.id(), "closing a pooled sandbox failed: {e}");
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The sandboxes' own Drop frees their engine resources in the background.
        self.stop.cancel();
    }
}

/// Keeps the pool full: one create at a time, backing off after failures.
async fn refill(pool: std::sync::Weak<Pool>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(p) = pool.upgrade() else { return };
        if p.ready() >= p.size {
            // Wait without holding the pool, so dropping its last handle still stops this loop.
            let wake = p.wake.clone();
            drop(p);
            tokio::select! {
                _ = wake.notified() => continue,
                _ = stop.cancelled() => return,
            }
        }
        let config = p.config.clone();
        drop(p);
        // A stop does not abandon a create in flight: the sandbox it makes is closed below, so a
        // shutdown that waits for this loop leaves nothing running.
        let made = Sandbox::create(config).await;
        match (made, pool.upgrade()) {
            (Ok(sb), Some(p)) if !stop.is_cancelled() => {
                backoff = Duration::from_millis(500);
                p.ready.lock().unwrap_or_else(|e| e.into_inner()).push_back(sb);
            }
            (Ok(sb), _) => {
                let _ = sb.close().await;
                return;
            }
            (Err(e), _) => {
                tracing::warn!("refilling the sandbox pool failed (retrying in {backoff:?}): {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

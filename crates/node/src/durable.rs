//! Sandboxes the daemon owns, from Node: `connect(id)` by id from any process, a persistent
//! create (made through the daemon, which is started when none runs, so the sandbox outlives this
//! process), and `delete()`, which frees a connected sandbox for good (`close()` frees only the
//! handle). Stop and resume are in `lifecycle.rs`.

use napi_derive::napi;

use crate::error::to_napi;
use crate::options::SandboxOptions;
use crate::sandbox::NativeSandbox;

#[napi]
impl NativeSandbox {
    /// A handle on sandbox `id`, which the daemon of `stateDir` (default: the default state dir)
    /// owns. `options` applies to this handle only: `timeoutMs`, `restrictedPaths`,
    /// `outputCapBytes`, `env`.
    #[napi(factory, catch_unwind)]
    pub async fn connect(
        id: String,
        options: Option<SandboxOptions>,
        state_dir: Option<String>,
    ) -> napi::Result<NativeSandbox> {
        let handle = options.unwrap_or_default().into_config()?;
        let path = state_dir.map(std::path::PathBuf::from);
        let sb = dagger_sandbox_daemon_client::connect(path.as_deref(), &id, handle).await.map_err(to_napi)?;
        Ok(NativeSandbox { sb })
    }

    /// Creates a sandbox through the daemon of `stateDir`, starting one when none runs; it
    /// outlives this process (until the daemon's TTL, `ttlSeconds`).
    #[napi(factory, catch_unwind)]
    pub async fn create_persistent(
        options: Option<SandboxOptions>,
        state_dir: Option<String>,
        ttl_seconds: Option<u32>,
    ) -> napi::Result<NativeSandbox> {
        let cfg = options.unwrap_or_default().into_config()?;
        let path = state_dir.map(std::path::PathBuf::from);
        let sb = dagger_sandbox_daemon_client::create_persistent(path.as_deref(), cfg, ttl_seconds.map(u64::from))
            .await
            .map_err(to_napi)?;
        Ok(NativeSandbox { sb })
    }

    /// Whether the daemon owns this sandbox (a persistent or connected handle).
    #[napi(getter)]
    pub fn connected(&self) -> bool {
        self.sb.is_connected()
    }

    /// Frees the sandbox for good: the daemon deletes a connected one; otherwise `close()`.
    #[napi(catch_unwind)]
    pub async fn delete(&self) -> napi::Result<()> {
        self.sb.delete().await.map_err(|e| self.err(e))
    }
}

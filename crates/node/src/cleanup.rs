//! `cleanupOrphans()`: removes what sandboxes of dead processes left behind.

use napi_derive::napi;

use crate::error::to_napi;

/// What `cleanupOrphans()` removed.
#[napi(object)]
pub struct CleanupReport {
    /// Containers removed.
    pub containers: u32,
    /// Snapshot images removed.
    pub images: u32,
    /// Local sandbox directories removed.
    pub directories: u32,
}

/// Removes sandboxes whose owning process exited without closing them (labelled containers and
/// their snapshot images, local sandbox directories). Sandboxes of live processes are never touched.
#[napi]
pub async fn cleanup_orphans() -> napi::Result<CleanupReport> {
    let r = dagger_sandbox::cleanup_orphans().await.map_err(to_napi)?;
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(CleanupReport { containers: n(r.containers), images: n(r.images), directories: n(r.directories) })
}

//! `stop()`, `resume()` and `stopped` of `NativeSandbox`: a stopped sandbox keeps its files and
//! runs nothing; calls meanwhile reject with `STOPPED`.

use napi_derive::napi;

use crate::sandbox::NativeSandbox;

#[napi]
impl NativeSandbox {
    /// Whether the sandbox is stopped (files kept, nothing running) until `resume()`.
    #[napi(getter)]
    pub fn stopped(&self) -> bool {
        self.sb.is_stopped()
    }

    /// Frees the sandbox's CPU and memory and keeps its files; later calls reject with `STOPPED`
    /// until `resume()`. Idempotent.
    #[napi(catch_unwind)]
    pub async fn stop(&self) -> napi::Result<()> {
        self.sb.stop().await.map_err(|e| self.err(e))
    }

    /// Brings a stopped sandbox back with the same files, env and workdir. Idempotent.
    #[napi(catch_unwind)]
    pub async fn resume(&self) -> napi::Result<()> {
        self.sb.resume().await.map_err(|e| self.err(e))
    }
}

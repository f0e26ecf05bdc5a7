//! The Rust side of the per-call overhead benchmark (`bench/read-file.mjs`): the same `readFile`
//! timed inside Rust, so the JS figures can be compared with it in one run.

use std::time::Instant;

use napi_derive::napi;

use crate::sandbox::NativeSandbox;

#[napi]
impl NativeSandbox {
    /// Benchmark helper, not API: reads `path` `n` times in Rust and returns each call's
    /// duration in microseconds.
    #[napi(catch_unwind)]
    pub async fn bench_read_file(&self, path: String, n: u32) -> napi::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t = Instant::now();
            self.sb.read_file(&path).await.map_err(|e| self.err(e))?;
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(out)
    }
}

//! Create from a warm pool vs a fresh create on Docker (a benchmark, not a test): p50 and p95 of
//! the time until the caller holds a usable sandbox, interleaved so engine noise hits both alike.
//! After each pooled take the pool is allowed to refill before the next, as with agents that
//! create a sandbox every few seconds.
//!
//! Run: `cargo run -p dagger-sandbox --example pool_bench [IMAGE] [N]` (default
//! `dagger-sandbox-test/node:22`, 30).

use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, Pool, Sandbox, SandboxConfig};

fn pct(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> dagger_sandbox::Result<()> {
    let image = std::env::args().nth(1).unwrap_or_else(|| "dagger-sandbox-test/node:22".into());
    let n: usize = std::env::args().nth(2).and_then(|v| v.parse().ok()).unwrap_or(30);
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).image(&image);
    let pool = Pool::start(cfg.clone(), 2)?;
    let (mut pooled, mut fresh) = (Vec::new(), Vec::new());
    for _ in 0..n {
        while pool.ready() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = Instant::now();
        let sb = pool.take().await?;
        pooled.push(t.elapsed().as_secs_f64() * 1000.0);
        sb.close().await?;
        let t = Instant::now();
        let sb = Sandbox::create(cfg.clone()).await?;
        fresh.push(t.elapsed().as_secs_f64() * 1000.0);
        sb.close().await?;
    }
    pool.shutdown().await;
    println!("create on Docker, {image}, n={n}, ms");
    println!("| create | p50 | p95 |");
    println!("| --- | --- | --- |");
    println!("| from a warm pool (pool: 2) | {:.3} | {:.3} |", pct(&mut pooled, 0.5), pct(&mut pooled, 0.95));
    println!("| fresh | {:.1} | {:.1} |", pct(&mut fresh, 0.5), pct(&mut fresh, 0.95));
    Ok(())
}

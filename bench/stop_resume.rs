//! Stop and resume on Docker and local (a benchmark, not a test): p50 and p95 of `stop()`, of
//! `resume()`, and of resume plus the first exec (the time until a resumed sandbox answers).
//!
//! Run: `cargo run -p dagger-sandbox --example stop_resume_bench [IMAGE] [N]` (default
//! `dagger-sandbox-test/busybox:latest`, 20).

use std::time::Instant;

use dagger_sandbox::{BackendChoice, ExecOptions, Sandbox, SandboxConfig};

fn pct(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1]
}

/// (stop, resume, resume + first exec) in ms, `n` rounds on one sandbox with a file to keep.
async fn rounds(cfg: SandboxConfig, n: usize) -> dagger_sandbox::Result<[Vec<f64>; 3]> {
    let sb = Sandbox::create(cfg).await?;
    sb.write_file("kept.txt", "kept").await?;
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..n {
        let t = Instant::now();
        sb.stop().await?;
        out[0].push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        sb.resume().await?;
        out[1].push(t.elapsed().as_secs_f64() * 1000.0);
        let r = sb.exec("cat kept.txt", ExecOptions::new()).await?;
        out[2].push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.stdout, "kept", "the resumed sandbox kept its file");
    }
    sb.close().await?;
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> dagger_sandbox::Result<()> {
    let image = std::env::args().nth(1).unwrap_or_else(|| "dagger-sandbox-test/busybox:latest".into());
    let n: usize = std::env::args().nth(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    println!("stop and resume, n={n} per backend, ms (docker image {image})");
    println!("| backend | stop p50 | stop p95 | resume p50 | resume p95 | resume + first exec p50 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, cfg) in [
        ("docker", SandboxConfig::new().backend(BackendChoice::Docker).image(&image)),
        ("local", SandboxConfig::new().backend(BackendChoice::Local)),
    ] {
        let [mut stop, mut resume, mut first] = rounds(cfg, n).await?;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(&mut stop, 0.5),
            pct(&mut stop, 0.95),
            pct(&mut resume, 0.5),
            pct(&mut resume, 0.95),
            pct(&mut first, 0.5)
        );
    }
    Ok(())
}

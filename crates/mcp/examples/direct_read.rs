//! The baseline of the MCP overhead benchmark (benches/overhead.py): `Sandbox::read_file` called
//! directly, N times on one sandbox, printed as JSON latencies in microseconds.
//!
//! `cargo run -p dagger-sandbox-mcp --example direct_read -- [N] [backend] [image]`

use std::time::Instant;

use dagger_sandbox::{BackendChoice, Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    let backend: BackendChoice = args.next().unwrap_or_else(|| "docker".into()).parse()?;
    let image = args.next().unwrap_or_else(|| "dagger-sandbox-test/busybox:latest".into());
    let sb = Sandbox::create(SandboxConfig::new().backend(backend).image(image)).await?;
    sb.write_file("bench.txt", "x".repeat(1024)).await?;
    sb.read_file("bench.txt").await?; // warm-up
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sb.read_file("bench.txt").await?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    sb.close().await?;
    println!("{}", serde_json::json!({ "backend": sb.backend().to_string(), "us": us }));
    Ok(())
}

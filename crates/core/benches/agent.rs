//! The in-sandbox agent's fast path against the Engine API, side by side in one run on Docker:
//! an exec of `true` through the agent, through our API without it (`DAGGER_SANDBOX_AGENT=off`),
//! and as a raw bollard exec; `writeFile` and `readFile` of 1 KiB both ways; 100 concurrent execs
//! on one sandbox both ways. Prints p50 and p99 in ms.
//!
//! Run: `bash scripts/agent-build.sh && cargo bench -p dagger-sandbox --bench agent`. Needs Docker
//! and the local test image of `scripts/engine.sh`. `BENCH_N` sets iterations (default 200),
//! `BENCH_ROUNDS` the rounds of 100 concurrent execs (default 10).

#[path = "backends/raw_docker_api.rs"]
mod raw_docker_api;

use std::future::Future;
use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, ExecOptions, Sandbox, SandboxConfig};
use raw_docker_api::{raw_create, raw_exec, raw_remove};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";

/// Samples of one measured operation.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    async fn time<F: Future>(&mut self, f: F) -> F::Output {
        let start = Instant::now();
        let out = f.await;
        self.0.push(start.elapsed());
        out
    }

    /// The `q` quantile in ms (nearest rank).
    fn ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    }
}

/// A Docker sandbox of the test image; with `agent` false, `DAGGER_SANDBOX_AGENT=off` at create.
async fn sandbox(agent: bool) -> Sandbox {
    if !agent {
        std::env::set_var("DAGGER_SANDBOX_AGENT", "off");
    }
    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Docker).fallback(false).image(IMAGE)).await;
    std::env::remove_var("DAGGER_SANDBOX_AGENT");
    let sb = sb.expect("a Docker sandbox of the test image (run scripts/engine.sh)");
    assert_eq!(sb.agent_running().await, agent, "agent expected {agent} (scripts/agent-build.sh builds it)");
    sb
}

/// 100 execs of `true` started at once on `sb`; the wall time of all of them.
async fn hundred(sb: &Sandbox) -> Duration {
    let start = Instant::now();
    let runs = (0..100).map(|_| sb.exec("true", ExecOptions::new()));
    for r in futures_util::future::join_all(runs).await {
        assert_eq!(r.unwrap().exit_code, 0);
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this is a bench binary, not tests
    }
    let env_n = |k: &str, d: usize| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, rounds) = (env_n("BENCH_N", 200), env_n("BENCH_ROUNDS", 10));
    let Ok(version) = dagger_sandbox::engines::docker_available().await else {
        println!("SKIPPED: no Docker engine");
        return;
    };
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let fast = sandbox(true).await;
    let api = sandbox(false).await;
    let raw = raw_create(&docker, IMAGE).await;
    let kib = vec![b'x'; 1024];
    // Warm up every path.
    for _ in 0..5 {
        fast.exec("true", ExecOptions::new()).await.unwrap();
        api.exec("true", ExecOptions::new()).await.unwrap();
        raw_exec(&docker, &raw, "true").await;
    }
    let (mut exec_fast, mut exec_api, mut exec_raw) = (Samples::default(), Samples::default(), Samples::default());
    let (mut write_fast, mut write_api, mut read_fast, mut read_api) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    let (mut stat_fast, mut stat_api) = (Samples::default(), Samples::default());
    // Interleaved, so every path sees the same engine load.
    for _ in 0..n {
        assert_eq!(exec_fast.time(fast.exec("true", ExecOptions::new())).await.unwrap().exit_code, 0);
        assert_eq!(exec_api.time(api.exec("true", ExecOptions::new())).await.unwrap().exit_code, 0);
        assert_eq!(exec_raw.time(raw_exec(&docker, &raw, "true")).await, 0);
        write_fast.time(fast.write_file("/tmp/kib", &kib)).await.unwrap();
        write_api.time(api.write_file("/tmp/kib", &kib)).await.unwrap();
        assert_eq!(read_fast.time(fast.read_file("/tmp/kib")).await.unwrap().len(), 1024);
        assert_eq!(read_api.time(api.read_file("/tmp/kib")).await.unwrap().len(), 1024);
        assert!(stat_fast.time(fast.exists("/tmp/kib")).await.unwrap());
        assert!(stat_api.time(api.exists("/tmp/kib")).await.unwrap());
    }
    let (mut conc_fast, mut conc_api) = (Samples::default(), Samples::default());
    for _ in 0..rounds {
        conc_fast.time(hundred(&fast)).await;
        conc_api.time(hundred(&api)).await;
    }
    raw_remove(&docker, &raw).await;
    fast.close().await.unwrap();
    api.close().await.unwrap();

    println!(
        "\nin-sandbox agent vs Engine API on Docker {} (API {}), image {IMAGE}; n={n}, 100 concurrent x {rounds}; ms",
        version.version, version.api_version
    );
    println!("| operation | agent p50 | agent p99 | our API without agent p50 | p99 | raw Engine API p50 | p99 | raw p50 / agent p50 |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let row = |name: &str, a: &Samples, b: &Samples, r: Option<&Samples>| {
        let raw = r.map(|r| format!("{:.2} | {:.2} | {:.1}x", r.ms(0.5), r.ms(0.99), r.ms(0.5) / a.ms(0.5)));
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            a.ms(0.5),
            a.ms(0.99),
            b.ms(0.5),
            b.ms(0.99),
            raw.unwrap_or_else(|| "- | - | -".into())
        );
    };
    row("exec `true` round trip", &exec_fast, &exec_api, Some(&exec_raw));
    row("writeFile 1 KiB", &write_fast, &write_api, None);
    row("readFile 1 KiB", &read_fast, &read_api, None);
    row("exists (one stat: the transport alone)", &stat_fast, &stat_api, None);
    row("100 concurrent execs of `true` (wall time of all)", &conc_fast, &conc_api, None);
}

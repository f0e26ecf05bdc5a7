//! Backend overhead, side by side in one run: each operation through our API and as raw engine
//! calls (bollard for Docker; the SDK alone, on its own session, for Dagger), medians in ms.
//!
//! Run: `cargo bench -p dagger-sandbox --bench backends`. Docker needs the local test images of
//! `scripts/engine.sh`. The Dagger column runs when an engine is in sight (`_EXPERIMENTAL_DAGGER_CLI_BIN`,
//! `DAGGER_SESSION_PORT` or `dagger` on PATH), with `BENCH_DAGGER_IMAGE` and `BENCH_DAGGER_NODE_IMAGE`
//! (default `alpine:3.22` and `node:22-bookworm-slim`). The validate row runs the CLI binary
//! (`cargo build -p dagger-sandbox-cli` first). `BENCH_N` sets iterations (default 30),
//! `BENCH_N_SLOW` those of refresh and validate (default 5); `BENCH_BACKENDS=dagger` (or `docker`)
//! measures one side only, for quick comparisons; the published table comes from one run of both.

mod raw_dagger;
mod raw_docker;
mod raw_docker_api;
mod workload;

use std::path::{Path, PathBuf};

use workload::{row, Pair, NODE_INSTALL, NODE_TEST};

/// Every measured operation.
#[derive(Default)]
pub struct Ops {
    create: Pair,
    exec: Pair,
    write: Pair,
    read: Pair,
    fork: Pair,
    refresh_cold: Pair,
    refresh_again: Pair,
    validate: Pair,
}

/// `dagger-sandbox validate` of `dir` on `backend` from `image`, as a user runs it; whether it passed.
pub async fn validate_cli(cli: &Path, dir: &Path, backend: &str, image: &str) -> bool {
    let state = tempfile::tempdir().unwrap();
    let status = tokio::process::Command::new(cli)
        .arg("--state-dir")
        .arg(state.path())
        .arg("validate")
        .arg(dir)
        .args(["--backend", backend, "--image", image, "--install", NODE_INSTALL, "--test", NODE_TEST, "--json"])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    status.success()
}

/// The CLI binary next to this build, if it was built.
fn cli_binary() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let p = target.join("debug/dagger-sandbox");
    p.is_file().then_some(p)
}

fn dagger_in_sight() -> bool {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dagger").is_file()))
        .unwrap_or(false);
    on_path
        || std::env::var_os("_EXPERIMENTAL_DAGGER_CLI_BIN").is_some()
        || std::env::var_os("DAGGER_SESSION_PORT").is_some()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this is a bench binary, not tests
    }
    let env_n = |k: &str, d: usize| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, n_slow) = (env_n("BENCH_N", 30), env_n("BENCH_N_SLOW", 5));
    let cli = cli_binary();
    if cli.is_none() {
        println!(
            "note: no target/debug/dagger-sandbox: the validate row shows raw only (cargo build -p dagger-sandbox-cli)"
        );
    }
    let wanted = |b: &str| std::env::var("BENCH_BACKENDS").map(|v| v.split(',').any(|x| x.trim() == b)).unwrap_or(true);
    let docker = match raw_docker::describe().await {
        Some(_) if !wanted("docker") => None,
        Some(v) => {
            let ops = raw_docker::run(n, n_slow, cli.as_deref()).await;
            Some((v, ops))
        }
        None => {
            println!("SKIPPED: docker: no Docker engine");
            None
        }
    };
    let dagger = if !wanted("dagger") {
        None
    } else if dagger_in_sight() {
        let image = std::env::var("BENCH_DAGGER_IMAGE").unwrap_or_else(|_| "alpine:3.22".into());
        let node = std::env::var("BENCH_DAGGER_NODE_IMAGE").unwrap_or_else(|_| "node:22-bookworm-slim".into());
        let version = engine_version().await;
        Some((version, raw_dagger::run(n, n_slow, (image, node), cli.clone()).await))
    } else {
        println!(
            "SKIPPED: dagger: no engine in sight (_EXPERIMENTAL_DAGGER_CLI_BIN, DAGGER_SESSION_PORT, dagger on PATH)"
        );
        None
    };
    let none = Ops::default();
    let (dv, dk) = docker.as_ref().map(|(v, o)| (v.as_str(), o)).unwrap_or(("no Docker", &none));
    let (gv, dg) = dagger.as_ref().map(|(v, o)| (v.as_str(), o)).unwrap_or(("no Dagger", &none));
    println!("\nbackends vs raw engine calls, {dv}; {gv}; n={n} (refresh and validate n={n_slow}); medians in ms");
    println!("| operation | docker ours | raw bollard | ratio | dagger ours | raw SDK | ratio |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    row("create (+start)", &dk.create, &dg.create);
    row("exec round trip", &dk.exec, &dg.exec);
    row("writeFiles, 1,000 files", &dk.write, &dg.write);
    row("readFile", &dk.read, &dg.read);
    row("fork", &dk.fork, &dg.fork);
    row("refreshFromHost, 5,000 files, cold", &dk.refresh_cold, &dg.refresh_cold);
    row("refreshFromHost, same files again", &dk.refresh_again, &dg.refresh_again);
    row("validate a Node project (CLI)", &dk.validate, &dg.validate);
}

/// The engine's version, from a throwaway sandbox's session, for the header.
async fn engine_version() -> String {
    let cli = std::env::var_os("_EXPERIMENTAL_DAGGER_CLI_BIN").map(PathBuf::from).unwrap_or_else(|| "dagger".into());
    let out = tokio::process::Command::new(cli).arg("version").env("DAGGER_NO_UPDATE_CHECK", "1").output().await;
    let cli = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    format!("Dagger CLI {cli}, dagger-sdk {}", dagger_sdk::core::DAGGER_ENGINE_VERSION)
}

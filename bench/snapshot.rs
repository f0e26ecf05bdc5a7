//! Snapshot and restore times on Docker and local (a benchmark, not a test): p50 and p95 of
//! `Sandbox::snapshot` (the call, until the snapshot is listed) and of `Sandbox::from_snapshot`
//! (until the caller holds a usable sandbox with the snapshot's files), and of `Snapshot::remove`,
//! for a sandbox holding a small project (200 files, about 2 MB), next to the raw operation on the
//! same sandbox (`docker commit` of its container, `cp -a` of its directory) measured in the same
//! rounds, so a loaded machine shows in both. Snapshots go to a temp dir for local; every
//! snapshot, image, copy and sandbox made is removed.
//!
//! Run: `cargo run -p dagger-sandbox --example snapshot_bench [N] [IMAGE]` (default 20,
//! `dagger-sandbox-test/node:22`).

use std::time::Instant;

use dagger_sandbox::{BackendChoice, Sandbox, SandboxConfig, Snapshot};

fn pct(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Runs a raw baseline command; its time in ms.
fn raw(argv: &[&str]) -> f64 {
    let t = Instant::now();
    let out = std::process::Command::new(argv[0]).args(&argv[1..]).output().expect("running the baseline");
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    ms(t)
}

/// The raw baseline for `sb` with its cleanup: `docker commit` (then `docker rmi`) or `cp -a`.
fn baseline(sb: &Sandbox, scratch: &std::path::Path, round: usize) -> f64 {
    let resource = sb.resource_id();
    if sb.backend() == dagger_sandbox::BackendKind::Docker {
        let tag = format!("dagger-sandbox-bench/raw-commit:{round}");
        let took = raw(&["docker", "commit", "--pause=true", &resource, &tag]);
        raw(&["docker", "rmi", &tag]);
        took
    } else {
        let to = scratch.join(format!("copy-{round}"));
        let took = raw(&["cp", "-a", &resource, to.to_str().unwrap()]);
        std::fs::remove_dir_all(&to).expect("removing the copy");
        took
    }
}

/// (snapshot, restore, delete, raw) times in ms over `n` rounds on one sandbox.
async fn measure(cfg: SandboxConfig, restore: SandboxConfig, n: usize) -> dagger_sandbox::Result<[Vec<f64>; 4]> {
    let scratch = tempfile::tempdir().map_err(|e| dagger_sandbox::Error::InvalidArgument(e.to_string()))?;
    let sb = Sandbox::create(cfg).await?;
    let blob = "x".repeat(10_000);
    let files: Vec<(String, String)> = (0..200).map(|i| (format!("src/f{i}.txt"), blob.clone())).collect();
    sb.write_files(files.iter().map(|(p, c)| (p.as_str(), c.as_str()))).await?;
    let mut out = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..n {
        sb.write_file("round.txt", i.to_string()).await?;
        out[3].push(baseline(&sb, scratch.path(), i));
        let t = Instant::now();
        let snap = sb.snapshot(None).await?;
        out[0].push(ms(t));
        let t = Instant::now();
        let restored = Sandbox::from_snapshot(&snap.id, restore.clone()).await?;
        out[1].push(ms(t));
        assert_eq!(restored.read_file("round.txt").await?, i.to_string().as_bytes());
        restored.close().await?;
        let t = Instant::now();
        Snapshot::remove(&snap.id).await?;
        out[2].push(ms(t));
    }
    sb.close().await?;
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> dagger_sandbox::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(20);
    let image = std::env::args().nth(2).unwrap_or_else(|| "dagger-sandbox-test/node:22".into());
    let dir = tempfile::tempdir().map_err(|e| dagger_sandbox::Error::InvalidArgument(e.to_string()))?;
    std::env::set_var(dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV, dir.path());
    let docker = SandboxConfig::new().backend(BackendChoice::Docker);
    let local = SandboxConfig::new().backend(BackendChoice::Local);
    let runs = [
        (format!("docker ({image})"), measure(docker.clone().image(&image), docker, n).await?),
        ("local".to_string(), measure(local.clone(), local, n).await?),
    ];
    println!("snapshot / restore / delete, a sandbox with 200 files (2 MB), n={n}, ms");
    println!("| backend | snapshot p50 | snapshot p95 | raw p50 | restore p50 | restore p95 | delete p50 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, [mut s, mut r, mut d, mut b]) in runs {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(&mut s, 0.5),
            pct(&mut s, 0.95),
            pct(&mut b, 0.5),
            pct(&mut r, 0.5),
            pct(&mut r, 0.95),
            pct(&mut d, 0.5)
        );
    }
    println!("raw: `docker commit --pause=true` of the container (docker), `cp -a` of the directory (local)");
    Ok(())
}

//! Docker backend overhead: median create, exec round trip, writeFiles of 1,000 files, readFile and
//! fork through our API, next to the same operations as raw bollard calls, interleaved in one run.
//!
//! Run: `cargo bench -p dagger-sandbox --bench docker_vs_raw` (needs Docker and the local test
//! image from `scripts/engine.sh`; `BENCH_N` sets iterations, default 30).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::body_full;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerConfig, ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use dagger_sandbox::{BackendChoice, ExecOptions, FileWrite, Sandbox, SandboxConfig};
use futures_util::{StreamExt, TryStreamExt};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";

/// The same container settings our backend uses, so the comparison is like for like.
fn raw_body(image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.into()),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        cmd: Some(vec![]),
        working_dir: Some("/workspace".into()),
        labels: Some(HashMap::from([("dev.dagger-sandbox.bench".to_string(), "1".to_string())])),
        network_disabled: Some(true),
        stop_timeout: Some(1),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            memory: Some(2048 << 20),
            memory_swap: Some(2048 << 20),
            pids_limit: Some(1024),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn raw_create(d: &Docker, image: &str) -> String {
    let c =
        d.create_container(None::<bollard::query_parameters::CreateContainerOptions>, raw_body(image)).await.unwrap();
    d.start_container(&c.id, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    c.id
}

async fn raw_remove(d: &Docker, id: &str) {
    let _ = d.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build())).await;
}

async fn raw_exec(d: &Docker, id: &str, cmd: &str) -> i64 {
    let config = ExecConfig {
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), cmd.into()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        working_dir: Some("/workspace".into()),
        ..Default::default()
    };
    let e = d.create_exec(id, config).await.unwrap();
    let opts = StartExecOptions { detach: false, tty: false, output_capacity: None };
    if let StartExecResults::Attached { mut output, .. } = d.start_exec(&e.id, Some(opts)).await.unwrap() {
        while output.next().await.is_some() {}
    }
    loop {
        let i = d.inspect_exec(&e.id).await.unwrap();
        if i.running != Some(true) {
            return i.exit_code.unwrap_or(-1);
        }
    }
}

fn files_1000() -> Vec<(String, Vec<u8>)> {
    (0..1000)
        .map(|i| (format!("workspace/bench/d{}/f{i}.txt", i % 20), format!("content of file {i}\n").into_bytes()))
        .collect()
}

fn raw_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

async fn raw_read(d: &Docker, id: &str, path: &str) -> Vec<u8> {
    let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
    let bytes: Vec<u8> = d
        .download_from_container(id, Some(opts))
        .try_fold(Vec::new(), |mut a, c| async move {
            a.extend_from_slice(&c);
            Ok(a)
        })
        .await
        .unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut out).unwrap();
    out
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    async fn time<T, F: Future<Output = T>>(&mut self, f: F) -> T {
        let t = Instant::now();
        let v = f.await;
        self.0.push(t.elapsed());
        v
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

fn row(op: &str, ours: &Samples, raw: &Samples) {
    let (o, r) = (ours.pct(0.5), raw.pct(0.5));
    println!("{op:<24} {o:>10.2} {r:>10.2} {:>8.2}x {:>10.2} {:>10.2}", o / r, ours.pct(0.9), raw.pct(0.9));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this is a bench binary, not tests
    }
    let n: usize = std::env::var("BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    if let Err(why) = dagger_sandbox::engines::docker_available().await {
        println!("SKIPPED: docker_vs_raw: no Docker engine ({why})");
        return;
    }
    let d = Docker::connect_with_defaults().unwrap();
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).image(IMAGE);
    let [mut oc, mut rc, mut oe, mut re, mut ow, mut rw, mut or_, mut rr, mut of, mut rf]: [Samples; 10] =
        Default::default();

    // Warm up both paths once.
    let sb = Sandbox::create(cfg.clone()).await.unwrap();
    let raw = raw_create(&d, IMAGE).await;
    sb.exec("true", ExecOptions::new()).await.unwrap();
    raw_exec(&d, &raw, "true").await;
    let files = files_1000();
    let ours_files: Vec<FileWrite> = files.iter().map(|(p, c)| FileWrite::new(format!("/{p}"), c.clone())).collect();
    sb.write_file("/workspace/one.txt", "hello\n").await.unwrap();
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    d.upload_to_container(
        &raw,
        Some(opts.clone()),
        body_full(raw_tar(&[("workspace/one.txt".into(), b"hello\n".to_vec())]).into()),
    )
    .await
    .unwrap();

    for _ in 0..n {
        let s = oc.time(Sandbox::create(cfg.clone())).await.unwrap();
        s.close().await.unwrap();
        let id = rc.time(raw_create(&d, IMAGE)).await;
        raw_remove(&d, &id).await;

        oe.time(sb.exec("true", ExecOptions::new())).await.unwrap();
        re.time(raw_exec(&d, &raw, "true")).await;

        ow.time(sb.write_files(ours_files.clone())).await.unwrap();
        let up =
            rw.time(async { d.upload_to_container(&raw, Some(opts.clone()), body_full(raw_tar(&files).into())).await });
        up.await.unwrap();

        assert_eq!(or_.time(sb.read_file("/workspace/one.txt")).await.unwrap(), b"hello\n");
        assert_eq!(rr.time(raw_read(&d, &raw, "/workspace/one.txt")).await, b"hello\n");

        let f = of.time(sb.fork()).await.unwrap();
        f.close().await.unwrap();
        let (snap, child) = rf
            .time(async {
                let snap = d
                    .commit_container(
                        CommitContainerOptionsBuilder::default()
                            .container(&raw)
                            .repo("dagger-sandbox-bench")
                            .pause(true)
                            .build(),
                        ContainerConfig::default(),
                    )
                    .await
                    .unwrap();
                let child = raw_create(&d, &snap.id).await;
                (snap.id, child)
            })
            .await;
        raw_remove(&d, &child).await;
        let _ = d.remove_image(&snap, Some(RemoveImageOptionsBuilder::default().force(true).build()), None).await;
    }
    sb.close().await.unwrap();
    raw_remove(&d, &raw).await;

    let v = dagger_sandbox::engines::docker_available().await.unwrap();
    println!("docker backend vs raw bollard, Docker {} (API {}), n={n}, times in ms", v.version, v.api_version);
    println!(
        "{:<24} {:>10} {:>10} {:>9} {:>10} {:>10}",
        "operation", "ours p50", "raw p50", "ratio", "ours p90", "raw p90"
    );
    row("create (+start)", &oc, &rc);
    row("exec round trip", &oe, &re);
    row("writeFiles 1000 files", &ow, &rw);
    row("readFile", &or_, &rr);
    row("fork", &of, &rf);
}

//! The Docker side of the benchmark: our API and the same operations as raw bollard calls,
//! interleaved in one loop so both see the same engine state.

use std::path::Path;

use bollard::body_full;
use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, RemoveImageOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use dagger_sandbox::{BackendChoice, ExecOptions, FileWrite, RefreshOptions, Sandbox, SandboxConfig};
use futures_util::TryStreamExt;

use crate::raw_docker_api::{raw_create, raw_exec, raw_remove};
use crate::workload::{files_1000, node_project, project_5000, raw_tar, EXCLUDES, NODE_INSTALL, NODE_TEST};
use crate::{validate_cli, Ops};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";
const NODE_IMAGE: &str = "dagger-sandbox-test/node:latest";

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

/// A tar of the host directory `root` under `prefix` (relative to `/`), leaving out [`EXCLUDES`]
/// at any depth, as a raw caller would build it.
fn tar_host_dir(root: &Path, prefix: &str) -> Vec<u8> {
    fn walk(b: &mut tar::Builder<Vec<u8>>, dir: &Path, rel: &str) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if EXCLUDES.contains(&name.as_str()) {
                continue;
            }
            let path = format!("{rel}/{name}");
            if e.file_type().unwrap().is_dir() {
                b.append_dir(&path, e.path()).unwrap();
                walk(b, &e.path(), &path);
            } else {
                b.append_path_with_name(e.path(), &path).unwrap();
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    walk(&mut b, root, prefix);
    b.into_inner().unwrap()
}

/// Raw `docker run`-style validation: a container, the project copied in, install and test, removed.
async fn raw_validate(d: &Docker, project: &Path) -> bool {
    let id = raw_create(d, NODE_IMAGE).await;
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    d.upload_to_container(&id, Some(opts), body_full(tar_host_dir(project, "workspace").into())).await.unwrap();
    let ok = raw_exec(d, &id, NODE_INSTALL).await == 0 && raw_exec(d, &id, NODE_TEST).await == 0;
    raw_remove(d, &id).await;
    ok
}

/// Runs every operation `n` times (`n_slow` for refresh and validate) through our API and raw.
pub async fn run(n: usize, n_slow: usize, cli: Option<&Path>) -> Ops {
    let d = Docker::connect_with_defaults().unwrap();
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).image(IMAGE);
    let mut ops = Ops::default();

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
        let s = ops.create.ours.time(Sandbox::create(cfg.clone())).await.unwrap();
        s.close().await.unwrap();
        let id = ops.create.raw.time(raw_create(&d, IMAGE)).await;
        raw_remove(&d, &id).await;

        ops.exec.ours.time(sb.exec("true", ExecOptions::new())).await.unwrap();
        ops.exec.raw.time(raw_exec(&d, &raw, "true")).await;

        ops.write.ours.time(sb.write_files(ours_files.clone())).await.unwrap();
        let up = ops
            .write
            .raw
            .time(async { d.upload_to_container(&raw, Some(opts.clone()), body_full(raw_tar(&files).into())).await });
        up.await.unwrap();

        assert_eq!(ops.read.ours.time(sb.read_file("/workspace/one.txt")).await.unwrap(), b"hello\n");
        assert_eq!(ops.read.raw.time(raw_read(&d, &raw, "/workspace/one.txt")).await, b"hello\n");

        let f = ops.fork.ours.time(sb.fork()).await.unwrap();
        f.close().await.unwrap();
        let (snap, child) = ops
            .fork
            .raw
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

    let node_dir = tempfile::tempdir().unwrap();
    node_project(node_dir.path());
    for _ in 0..n_slow {
        let project = tempfile::tempdir().unwrap();
        project_5000(project.path());
        let s = Sandbox::create(cfg.clone()).await.unwrap();
        let refresh = || s.refresh_from_host(project.path(), "/workspace/app", RefreshOptions::exclude(EXCLUDES));
        ops.refresh_cold.ours.time(refresh()).await.unwrap();
        ops.refresh_again.ours.time(refresh()).await.unwrap();
        s.close().await.unwrap();
        let id = raw_create(&d, IMAGE).await;
        for p in [&mut ops.refresh_cold.raw, &mut ops.refresh_again.raw] {
            let tar = p.time(async {
                let tar = tar_host_dir(project.path(), "workspace/app");
                d.upload_to_container(&id, Some(opts.clone()), body_full(tar.into())).await
            });
            tar.await.unwrap();
        }
        raw_remove(&d, &id).await;

        if let Some(cli) = cli {
            let ok = ops.validate.ours.time(validate_cli(cli, node_dir.path(), "docker", NODE_IMAGE)).await;
            assert!(ok, "validate of the node project failed on docker");
        }
        assert!(ops.validate.raw.time(raw_validate(&d, node_dir.path())).await, "raw validate failed");
    }
    ops
}

/// Whether `docker` answers, for the header.
pub async fn describe() -> Option<String> {
    let v = dagger_sandbox::engines::docker_available().await.ok()?;
    Some(format!("Docker {} (API {})", v.version, v.api_version))
}

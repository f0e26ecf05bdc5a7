//! The Dagger side of the benchmark: our API and the same operations as a user writes them with
//! the SDK alone (`dagger_sdk::connect`, its own session), interleaved in one loop.

use std::path::Path;

use dagger_sandbox::{BackendChoice, ExecOptions, FileWrite, RefreshOptions, Sandbox, SandboxConfig};
use dagger_sdk::{Container, ContainerWithExecOptsBuilder, HostDirectoryOptsBuilder, Query, ReturnType};

use crate::workload::{files_1000, node_project, project_5000, EXCLUDES, NODE_INSTALL, NODE_TEST};
use crate::{validate_cli, Ops};

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A container from `image` with a workdir, evaluated (an exec makes `from` real). Like our
/// create's probe, the same setup on the same image is the same query, which the engine answers
/// from its cache after the first time.
async fn raw_create(q: &Query, image: &str) -> eyre::Result<Container> {
    Ok(q.container().from(image).with_exec(vec!["mkdir", "-p", "/workspace"]).with_workdir("/workspace").sync().await?)
}

/// One command and its output, the way an SDK user runs it.
async fn raw_exec(c: &Container, cmd: &str) -> eyre::Result<String> {
    let opts = ContainerWithExecOptsBuilder::default().expect(ReturnType::Any).build()?;
    Ok(c.with_env_variable("BENCH_NONCE", nonce()).with_exec_opts(vec!["sh", "-c", cmd], opts).stdout().await?)
}

/// `files` written to a fresh host directory and copied in with `withDirectory`.
async fn raw_write(q: &Query, c: &Container, files: &[(String, Vec<u8>)]) -> eyre::Result<Container> {
    let dir = tempfile::tempdir()?;
    for (p, data) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(path, data)?;
    }
    let host = q.host().directory(dir.path().to_string_lossy().into_owned());
    Ok(c.with_directory("/", host).sync().await?)
}

/// The host project as the engine sees it: `Host.directory` with the excludes (`**/` so they apply
/// at any depth, as ours do) and `noCache` (the engine caches a host path for the whole session,
/// and without it a changed file came back stale, 10 runs of 10, measured live).
fn host_project(q: &Query, project: &Path) -> eyre::Result<dagger_sdk::Directory> {
    let excludes: Vec<String> = EXCLUDES.iter().map(|e| format!("**/{e}")).collect();
    let opts = HostDirectoryOptsBuilder::default()
        .exclude(excludes.iter().map(String::as_str).collect::<Vec<_>>())
        .no_cache(true)
        .build()?;
    Ok(q.host().directory_opts(project.to_string_lossy().into_owned(), opts))
}

/// The host project copied in with `withDirectory`.
async fn raw_refresh(q: &Query, c: &Container, project: &Path) -> eyre::Result<Container> {
    Ok(c.with_directory("/workspace/app", host_project(q, project)?).sync().await?)
}

/// The project in a fresh container, install and test, as an SDK pipeline.
async fn raw_validate(q: &Query, image: &str, project: &Path) -> eyre::Result<bool> {
    let src = host_project(q, project)?;
    let expect = || ContainerWithExecOptsBuilder::default().expect(ReturnType::Any).build();
    let c = q
        .container()
        .from(image)
        .with_env_variable("BENCH_NONCE", nonce())
        .with_directory("/workspace", src)
        .with_workdir("/workspace")
        .with_exec_opts(vec!["sh", "-c", NODE_INSTALL], expect()?)
        .sync()
        .await?;
    if c.exit_code().await? != 0 {
        return Ok(false);
    }
    let t = c.with_exec_opts(vec!["sh", "-c", NODE_TEST], expect()?).sync().await?;
    Ok(t.exit_code().await? == 0)
}

/// Runs every operation through our API and with the SDK alone; `images` are (busybox-like, node).
pub async fn run(n: usize, n_slow: usize, images: (String, String), cli: Option<std::path::PathBuf>) -> Ops {
    let (image, node_image) = images;
    let out = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = out.clone();
    dagger_sdk::connect(move |q| async move {
        let ops = measure(&q, n, n_slow, &image, &node_image, cli.as_deref()).await?;
        *slot.lock().unwrap() = Some(ops);
        Ok(())
    })
    .await
    .expect("the SDK's own session (raw side) failed");
    let ops = out.lock().unwrap().take();
    ops.expect("the dagger measurement ended without results")
}

async fn measure(
    q: &Query,
    n: usize,
    n_slow: usize,
    image: &str,
    node_image: &str,
    cli: Option<&Path>,
) -> eyre::Result<Ops> {
    let cfg = SandboxConfig::new().backend(BackendChoice::Dagger).image(image);
    let mut ops = Ops::default();
    let files = files_1000();
    let ours_files: Vec<FileWrite> = files.iter().map(|(p, c)| FileWrite::new(format!("/{p}"), c.clone())).collect();

    // Warm up both paths once (image pulled, sessions up).
    let sb = Sandbox::create(cfg.clone()).await?;
    let mut raw = raw_create(q, image).await?;
    sb.exec("true", ExecOptions::new()).await?;
    raw_exec(&raw, "true").await?;

    for i in 0..n {
        let s = ops.create.ours.time(Sandbox::create(cfg.clone())).await?;
        s.close().await?;
        ops.create.raw.time(raw_create(q, image)).await?;

        ops.exec.ours.time(sb.exec("true", ExecOptions::new())).await?;
        ops.exec.raw.time(raw_exec(&raw, "true")).await?;

        ops.write.ours.time(sb.write_files(ours_files.clone())).await?;
        raw = ops.write.raw.time(raw_write(q, &raw, &files)).await?;

        // A new value every round: an unchanged state would be read from the engine's cache.
        let text = format!("hello {i}\n");
        sb.write_file("/workspace/one.txt", text.as_str()).await?;
        raw = raw.with_new_file("/workspace/one.txt", text.as_str()).sync().await?;
        assert_eq!(ops.read.ours.time(sb.read_file("/workspace/one.txt")).await?, text.as_bytes());
        assert_eq!(ops.read.raw.time(raw.file("/workspace/one.txt").contents()).await?, text);

        // A fork is a copy of a state handle: there is no raw operation to compare with.
        let f = ops.fork.ours.time(sb.fork()).await?;
        f.close().await?;
    }
    sb.close().await?;

    let node_dir = tempfile::tempdir()?;
    node_project(node_dir.path());
    for _ in 0..n_slow {
        // A new project directory every round, so "cold" is cold for the engine's file sync too.
        let project = tempfile::tempdir()?;
        project_5000(project.path());
        let s = Sandbox::create(cfg.clone()).await?;
        let refresh = || s.refresh_from_host(project.path(), "/workspace/app", RefreshOptions::exclude(EXCLUDES));
        ops.refresh_cold.ours.time(refresh()).await?;
        ops.refresh_again.ours.time(refresh()).await?;
        s.close().await?;
        let project2 = tempfile::tempdir()?;
        project_5000(project2.path());
        let c = raw_create(q, image).await?;
        ops.refresh_cold.raw.time(raw_refresh(q, &c, project2.path())).await?;
        ops.refresh_again.raw.time(raw_refresh(q, &c, project2.path())).await?;

        if let Some(cli) = cli {
            let ok = ops.validate.ours.time(validate_cli(cli, node_dir.path(), "dagger", node_image)).await;
            assert!(ok, "validate of the node project failed on dagger");
        }
        assert!(ops.validate.raw.time(raw_validate(q, node_image, node_dir.path())).await?, "raw validate failed");
    }
    Ok(ops)
}

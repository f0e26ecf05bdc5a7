//! A process that dies without closing its sandboxes leaves labelled resources behind, and
//! `cleanup_orphans` removes them, without touching the sandboxes of live processes. Disposable
//! sandboxes (`SandboxConfig::disposable`, what `validate` uses) are killed by `close` and removed
//! by the engine afterwards, so nothing is left even when the process exits right after `close`;
//! a reattached container is ended the way it was made, whatever the config says now.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use dagger_sandbox::{cleanup_orphans, BackendChoice, ExecOptions, Sandbox, SandboxConfig, LABEL_SANDBOX};

const IMAGE: &str = "dagger-sandbox-test/busybox:latest";

/// Run in a child process by the test below: creates sandboxes, prints their ids, and exits
/// without closing them, the way a crashed program would.
#[tokio::test]
#[ignore = "helper: run as a child process by orphans_of_a_dead_process_are_cleaned_up"]
async fn orphan_child_helper() {
    let backend = std::env::var("DSBX_ORPHAN_BACKEND").unwrap();
    let backend: BackendChoice = backend.parse().unwrap();
    let sb = Sandbox::create(SandboxConfig::new().backend(backend).image(IMAGE)).await.unwrap();
    let fork = sb.fork().await.unwrap();
    println!("ORPHANS {} {} {}", sb.id(), fork.id(), sb.resource_id());
    std::process::exit(0);
}

fn orphan_ids(backend: &str) -> (String, String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "orphan_child_helper", "--nocapture"])
        .env("DSBX_ORPHAN_BACKEND", backend)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ORPHANS "))
        .unwrap_or_else(|| panic!("child printed no ids: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let mut it = line.split_whitespace().skip(1).map(String::from);
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

async fn containers_of(id: &str) -> usize {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let filters = HashMap::from([("label", vec![format!("{LABEL_SANDBOX}={id}")])]);
    docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_a_dead_process_are_cleaned_up() {
    // A live sandbox of this process must survive the sweep.
    let live = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await.unwrap();

    let (_, _, dir) = orphan_ids("local");
    assert!(std::path::Path::new(&dir).exists(), "the dead child's directory is left behind");

    let docker = dagger_sandbox::engines::docker_available().await.is_ok();
    let docker_ids = if docker {
        let (a, b, _) = orphan_ids("docker");
        assert_eq!(
            (containers_of(&a).await, containers_of(&b).await),
            (1, 1),
            "the dead child's containers are left behind"
        );
        Some((a, b))
    } else if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but no Docker engine answers");
    } else {
        println!("SKIPPED: docker half of the orphan test: no Docker engine here");
        None
    };

    let report = cleanup_orphans().await.unwrap();
    println!("cleanup_orphans: {report:?}");
    assert!(!std::path::Path::new(&dir).exists(), "orphan directory removed");
    assert!(std::path::Path::new(&live.resource_id()).exists(), "a live sandbox is never touched");
    if let Some((a, b)) = docker_ids {
        assert_eq!((containers_of(&a).await, containers_of(&b).await), (0, 0), "orphan containers removed");
        assert!(report.containers >= 2 && report.images >= 1, "{report:?}");
    }
    live.close().await.unwrap();
}

/// Creates (without starting: the sweep judges containers in any state) a busybox container
/// labelled like a sandbox whose owner label is `owner`. Not started, because a concurrent sweep
/// (the other test of this file, or another process on the same engine) may remove a dead
/// owner's container between its create and a start, and a start would then fail.
async fn plant(owner: &str) -> String {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let labels = HashMap::from([
        ("dev.dagger-sandbox.managed".to_string(), "1".to_string()),
        ("dev.dagger-sandbox.owner".to_string(), owner.to_string()),
        ("dev.dagger-sandbox.sandbox".to_string(), format!("sbx-planted{:05}", std::process::id() % 100000)),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.into()),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        labels: Some(labels),
        network_disabled: Some(true),
        ..Default::default()
    };
    docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await.unwrap().id
}

async fn exists(id: &str) -> bool {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    docker.inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>).await.is_ok()
}

async fn remove(id: &str) {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(id, Some(opts)).await;
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_of_owners_this_process_cannot_judge_are_left_alone() {
    if dagger_sandbox::engines::docker_available().await.is_err() {
        assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "no Docker engine answers");
        println!("SKIPPED: no Docker engine here");
        return;
    }
    // A pid that does not run here, on this boot: the owner looks dead from this namespace, but
    // it names another PID namespace (a program in a container with the Docker socket), another
    // machine sharing DOCKER_HOST, or no namespace at all (the old `pid@boot` format).
    let boot = read("/proc/sys/kernel/random/boot_id");
    let dead = i32::MAX;
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap().display().to_string();
    let ns = ns.trim_start_matches("pid:[").trim_end_matches(']').to_string();
    let host = dagger_sandbox::host_id();
    let other_ns = plant(&format!("{dead}@{boot}@4026500000@{host}")).await;
    let other_host = plant(&format!("{dead}@{boot}@{ns}@another-machine:0123")).await;
    let old_format = plant(&format!("{dead}@{boot}")).await;
    let dead_here = plant(&format!("{dead}@{boot}@{ns}@{host}")).await;

    let report = cleanup_orphans().await;
    let kept = (exists(&other_ns).await, exists(&other_host).await, exists(&old_format).await);
    let removed = !exists(&dead_here).await;
    for id in [&other_ns, &other_host, &old_format, &dead_here] {
        remove(id).await;
    }
    let report = report.unwrap();
    assert_eq!(kept, (true, true, true), "owners of another namespace, host or format are left alone: {report:?}");
    assert!(removed, "a dead owner of this namespace and host is an orphan: {report:?}");
    assert!(report.unjudged >= 3, "{report:?}");
}

fn docker_ready(test: &str) -> bool {
    let ok = Command::new("docker").args(["image", "inspect", IMAGE]).output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or {IMAGE} is missing");
        }
        eprintln!("SKIPPED {test}: no Docker engine or test image (run scripts/engine.sh)");
    }
    ok
}

fn disposable_config() -> SandboxConfig {
    SandboxConfig::new().backend(BackendChoice::Docker).image(IMAGE).workdir("/w")
}

/// Whether sandbox `id`'s container is gone within a minute (the engine deletes its files first).
async fn gone_within_a_minute(id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if containers_of(id).await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Run in a child process by the test below: makes a disposable sandbox with a few thousand files,
/// prints its id, then closes it (`CLOSE=1`) or not, and exits at once.
#[tokio::test]
#[ignore = "helper: run as a child process by a_disposable_sandbox_is_removed_by_the_engine_after_its_process_exits"]
async fn disposable_child_helper() {
    let sb = Sandbox::create(disposable_config().disposable(true)).await.unwrap();
    let made = sb
        .exec(
            "for d in $(seq 1 40); do mkdir -p t/$d; for f in $(seq 1 50); do echo x > t/$d/$f; done; done",
            ExecOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(made.exit_code, 0, "{made:?}");
    println!("DISPOSABLE {}", sb.id());
    if std::env::var("CLOSE").as_deref() == Ok("1") {
        sb.close().await.unwrap();
    }
    std::process::exit(0);
}

fn child(close: bool) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "disposable_child_helper", "--nocapture"])
        .env("CLOSE", if close { "1" } else { "0" })
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("DISPOSABLE "))
        .unwrap_or_else(|| panic!("child printed no id: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    line["DISPOSABLE ".len()..].trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disposable_sandbox_is_removed_by_the_engine_after_its_process_exits() {
    if !docker_ready("a_disposable_sandbox_is_removed_by_the_engine_after_its_process_exits") {
        return;
    }
    // Closed, then the process exits at once: the engine finishes the removal by itself.
    let closed = child(true);
    assert!(gone_within_a_minute(&closed).await, "the engine removes a closed disposable sandbox");

    // Never closed (a crash): the container keeps running with its labels, and the sweep removes it.
    let crashed = child(false);
    assert_eq!(containers_of(&crashed).await, 1, "a sandbox whose process died is left running");
    cleanup_orphans().await.unwrap();
    assert!(gone_within_a_minute(&crashed).await, "the orphan sweep removes it");

    // In this process: close ends the sandbox (CLOSED afterwards), and the container goes.
    let sb = Sandbox::create(disposable_config().disposable(true)).await.unwrap();
    sb.close().await.unwrap();
    let err = sb.exec("true", ExecOptions::new()).await.unwrap_err();
    assert_eq!(err.code().as_str(), "CLOSED");
    assert!(gone_within_a_minute(sb.id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattached_container_is_ended_the_way_it_was_made() {
    if !docker_ready("a_reattached_container_is_ended_the_way_it_was_made") {
        return;
    }
    // Made as a plain sandbox, taken back with a config that says disposable: close must still
    // remove it (a kill alone would leave a stopped container behind).
    let sb = Sandbox::create(disposable_config()).await.unwrap();
    sb.detach();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    drop(sb);
    let back = Sandbox::reattach(disposable_config().disposable(true), &id, &resource).await.unwrap();
    back.close().await.unwrap();
    assert_eq!(containers_of(&id).await, 0, "a plain sandbox is gone when close returns");

    // Made disposable, taken back with a plain config: the engine still removes it after close.
    let sb = Sandbox::create(disposable_config().disposable(true)).await.unwrap();
    sb.detach();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    drop(sb);
    let back = Sandbox::reattach(disposable_config(), &id, &resource).await.unwrap();
    back.close().await.unwrap();
    assert!(gone_within_a_minute(&id).await);
}

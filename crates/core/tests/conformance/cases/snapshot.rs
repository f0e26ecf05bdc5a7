//! Conformance cases for snapshots: what a snapshot keeps (files, env, workdir, never a secret
//! value), that a sandbox made from one has the old state, typed refusals, and that deleting a
//! snapshot leaves nothing of it behind, even while a sandbox made from it runs.

use std::collections::HashMap;

use dagger_sandbox::snapshot::LABEL_SNAPSHOT;
use dagger_sandbox::{BackendChoice, BackendKind, ErrorCode, ExecOptions, Sandbox, SandboxConfig, Snapshot};

use crate::harness::{expect_code, Harness};

/// A config for a sandbox made from a snapshot: the backend only (the snapshot is the image).
fn restore_config(h: &Harness) -> SandboxConfig {
    let backend = match h.kind {
        BackendKind::Docker => BackendChoice::Docker,
        BackendKind::Local => BackendChoice::Local,
        BackendKind::Dagger => BackendChoice::Dagger,
    };
    SandboxConfig::new().backend(backend)
}

fn unique_name(tag: &str) -> String {
    format!("conf-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// What is left of snapshot `snap` on its engine: labelled images (docker) or its directory (local).
pub(super) async fn snapshot_leftovers(snap: &Snapshot) -> Vec<String> {
    match snap.backend {
        BackendKind::Docker => {
            use bollard::query_parameters::ListImagesOptionsBuilder;
            let docker = bollard::Docker::connect_with_defaults().unwrap();
            let filters = HashMap::from([("label", vec![format!("{LABEL_SNAPSHOT}={}", snap.id)])]);
            let opts = ListImagesOptionsBuilder::default().all(true).filters(&filters).build();
            docker.list_images(Some(opts)).await.unwrap().into_iter().map(|i| format!("image {}", i.id)).collect()
        }
        BackendKind::Local => {
            let home = dagger_sandbox::snapshot::snapshots_dir().join(&snap.id);
            if home.exists() {
                vec![home.display().to_string()]
            } else {
                vec![]
            }
        }
        BackendKind::Dagger => vec![],
    }
}

pub(super) async fn snapshot_and_restore_bring_back_files_env_and_workdir(h: Harness) {
    let sb = h.create().await;
    sb.write_files([("a.txt", "v1"), ("app/b.txt", "b")]).await.unwrap();
    sb.set_workdir("app").await.unwrap();
    sb.with_envs([("MODE", "snap"), ("API_TOKEN", "s3cret-value")]).unwrap();
    let name = unique_name("restore");
    let snap = sb.snapshot(Some(&name)).await.unwrap();
    assert!(snap.id.starts_with("snap-"), "{snap:?}");
    assert_eq!((snap.backend, snap.name.as_deref(), snap.source.as_str()), (h.kind, Some(name.as_str()), sb.id()));
    assert_eq!(snap.workdir, "/workspace/app");
    assert_eq!(snap.env.get("MODE").map(String::as_str), Some("snap"));
    assert!(!snap.env.contains_key("API_TOKEN"), "a secret value is never kept: {snap:?}");
    assert_eq!(snap.secret_env, vec!["API_TOKEN".to_string()]);
    assert!(!format!("{snap:?}").contains("s3cret-value"));
    if h.kind == BackendKind::Docker {
        // Neither the image's labels nor its env may hold the value (a commit copies the container's).
        let docker = bollard::Docker::connect_with_defaults().unwrap();
        let image = docker.inspect_image(&snap.engine_ref).await.unwrap();
        let config = format!("{:?}", image.config);
        assert!(config.contains("API_TOKEN") && !config.contains("s3cret-value"), "{config}");
    }
    if h.kind != BackendKind::Dagger {
        assert!(snap.size.is_some_and(|s| s > 0), "{snap:?}");
    }
    assert_eq!(Snapshot::inspect(&name).await.unwrap().id, snap.id);
    assert!(Snapshot::list().await.unwrap().iter().any(|s| s.id == snap.id));

    // Change everything after the snapshot.
    sb.write_file("/workspace/a.txt", "v2").await.unwrap();
    sb.delete_file("b.txt").await.unwrap();
    sb.write_file("new.txt", "n").await.unwrap();
    sb.with_env("MODE", "changed").unwrap();

    let restored = Sandbox::from_snapshot(&name, restore_config(&h)).await.unwrap();
    assert_eq!(restored.backend(), h.kind);
    assert_eq!(restored.workdir(), "/workspace/app");
    assert_eq!(restored.read_file("/workspace/a.txt").await.unwrap(), b"v1");
    assert_eq!(restored.read_file("b.txt").await.unwrap(), b"b");
    assert!(!restored.exists("new.txt").await.unwrap());
    let r = restored.exec("echo \"$MODE [$API_TOKEN]\"; pwd", ExecOptions::new()).await.unwrap();
    // The local backend's pwd is the host path of the sandbox directory.
    assert!(r.stdout.starts_with("snap []\n") && r.stdout.trim_end().ends_with("/workspace/app"), "{r:?}");
    assert!(restored.warnings().iter().any(|w| w.contains("API_TOKEN")), "{:?}", restored.warnings());
    // The source sandbox is untouched by the restore, and the two are independent.
    restored.write_file("only-restored.txt", "r").await.unwrap();
    assert!(!sb.exists("only-restored.txt").await.unwrap());
    assert_eq!(sb.read_file("/workspace/a.txt").await.unwrap(), b"v2");

    // A secret comes back from the config, and config values win over the snapshot's.
    let cfg = restore_config(&h).env("API_TOKEN", "given").env("MODE", "override");
    let with_secret = Sandbox::from_snapshot(&snap.id, cfg).await.unwrap();
    // Compared inside: Dagger scrubs a secret's value from output (`***`), the others print it.
    let r = with_secret
        .exec("test \"$API_TOKEN\" = given && echo \"$MODE [secret matches]\"", ExecOptions::new())
        .await
        .unwrap();
    assert_eq!(r.stdout, "override [secret matches]\n", "{r:?}");
    assert!(with_secret.warnings().is_empty(), "{:?}", with_secret.warnings());

    for s in [&sb, &restored, &with_secret] {
        s.close().await.unwrap();
    }
    assert_eq!(Snapshot::remove(&snap.id).await.unwrap().id, snap.id);
    expect_code(Snapshot::inspect(&snap.id).await, ErrorCode::NotFound);
    expect_code(Sandbox::from_snapshot(&name, restore_config(&h)).await, ErrorCode::NotFound);
    assert_eq!(snapshot_leftovers(&snap).await, Vec::<String>::new());
}

pub(super) async fn snapshot_refusals_are_typed_and_change_nothing(h: Harness) {
    let sb = h.create().await;
    for bad in ["", "has space", "snap-0123456789ab", "-dash"] {
        expect_code(sb.snapshot(Some(bad)).await, ErrorCode::InvalidArgument);
    }
    let name = unique_name("dup");
    let snap = sb.snapshot(Some(&name)).await.unwrap();
    let e = expect_code(sb.snapshot(Some(&name)).await, ErrorCode::InvalidArgument);
    assert!(e.to_string().contains(&snap.id), "{e}");
    expect_code(Sandbox::from_snapshot("snap-000000000000", restore_config(&h)).await, ErrorCode::NotFound);
    expect_code(Sandbox::from_snapshot("no-such-name", restore_config(&h)).await, ErrorCode::NotFound);
    expect_code(Sandbox::from_snapshot(&name, restore_config(&h).image("busybox")).await, ErrorCode::InvalidArgument);
    let other = if h.kind == BackendKind::Local { BackendChoice::Docker } else { BackendChoice::Local };
    expect_code(Sandbox::from_snapshot(&name, SandboxConfig::new().backend(other)).await, ErrorCode::InvalidArgument);
    expect_code(Snapshot::remove("snap-000000000000").await, ErrorCode::NotFound);
    sb.close().await.unwrap();
    expect_code(sb.snapshot(None).await, ErrorCode::Closed);
    // The refused calls took nothing away: the snapshot still restores.
    let restored = Sandbox::from_snapshot(&snap.id, restore_config(&h)).await.unwrap();
    restored.close().await.unwrap();
    Snapshot::remove(&snap.id).await.unwrap();
    assert_eq!(snapshot_leftovers(&snap).await, Vec::<String>::new());
}

pub(super) async fn deleting_a_snapshot_in_use_keeps_its_sandbox_and_leaves_nothing_after(h: Harness) {
    let sb = h.create().await;
    sb.write_file("kept.txt", "k").await.unwrap();
    let snap = sb.snapshot(None).await.unwrap();
    assert_eq!(snap.name, None);
    sb.close().await.unwrap();
    let restored = Sandbox::from_snapshot(&snap.id, restore_config(&h)).await.unwrap();
    // A snapshot of a sandbox made from a snapshot builds on it (a child image on docker).
    let second = restored.snapshot(None).await.unwrap();
    Snapshot::remove(&snap.id).await.unwrap();
    assert!(!Snapshot::list().await.unwrap().iter().any(|s| s.id == snap.id));
    assert_eq!(restored.read_file("kept.txt").await.unwrap(), b"k", "the running sandbox keeps working");
    restored.exec("echo more > more.txt", ExecOptions::new()).await.unwrap();
    let third = Sandbox::from_snapshot(&second.id, restore_config(&h)).await.unwrap();
    assert_eq!(third.read_file("kept.txt").await.unwrap(), b"k");
    restored.close().await.unwrap();
    third.close().await.unwrap();
    Snapshot::remove(&second.id).await.unwrap();
    assert_eq!(snapshot_leftovers(&snap).await, Vec::<String>::new(), "the deleted snapshot's data is gone");
    assert_eq!(snapshot_leftovers(&second).await, Vec::<String>::new());
}

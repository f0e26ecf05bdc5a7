//! `Inventory::find` and `remove`, as a daemon uses them to check on a sandbox it no longer holds:
//! a live local or docker sandbox is found with its backend and a live owner, a closed one is gone,
//! a Dagger id is a typed refusal, and `remove` never deletes a directory outside the local
//! sandbox parent, whatever a caller passes it.

use dagger_sandbox::inventory::{Inventory, Resource, ResourceKind, ResourceState};
use dagger_sandbox::{BackendChoice, BackendKind, ErrorCode, OwnerStatus, Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_reports_live_sandboxes_and_forgets_closed_ones() {
    let inventory = Inventory::new();
    let mut backends = vec![BackendChoice::Local];
    match dagger_sandbox::engines::docker_available().await {
        Ok(_) => backends.push(BackendChoice::Docker),
        Err(why) => {
            assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "no Docker engine: {why}");
            println!("SKIPPED: the docker half: {why}");
        }
    }
    for choice in backends {
        let cfg = SandboxConfig::new().backend(choice).image("dagger-sandbox-test/busybox:latest");
        let sb = Sandbox::create(cfg).await.unwrap();
        let found = inventory.find(sb.backend(), &sb.resource_id()).await.unwrap().expect("a live sandbox is found");
        assert_eq!(found.backend(), sb.backend(), "{found:?}");
        assert_eq!(found.sandbox.as_deref(), Some(sb.id()), "{found:?}");
        assert_eq!(found.owner_status(), OwnerStatus::Alive, "{found:?}");
        assert_eq!(found.owner_status().as_str(), "alive");
        assert!(found.made_here(), "{found:?}");
        let kind = if sb.backend() == BackendKind::Local { ResourceKind::Directory } else { ResourceKind::Container };
        assert_eq!(found.kind, kind);
        sb.close().await.unwrap();
        assert_eq!(inventory.find(sb.backend(), &sb.resource_id()).await.unwrap(), None, "{choice:?}: closed is gone");
    }
    let e = inventory.find(BackendKind::Dagger, "dagger:sbx-x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
}

#[tokio::test]
async fn remove_never_deletes_a_directory_outside_the_local_sandbox_parent() {
    let elsewhere = tempfile::tempdir().unwrap();
    let root = elsewhere.path().join("sbx-notours").join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("precious.txt"), "keep").unwrap();
    let claimed = Resource {
        kind: ResourceKind::Directory,
        id: root.display().to_string(),
        sandbox: Some("sbx-notours".into()),
        owner: None,
        host: None,
        state: ResourceState::Stored,
        created: 0,
    };
    assert_eq!(claimed.backend(), BackendKind::Local);
    let e = Inventory::new().remove(&claimed).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("is not a local sandbox directory"), "{e}");
    assert_eq!(std::fs::read_to_string(root.join("precious.txt")).unwrap(), "keep", "nothing was deleted");
}

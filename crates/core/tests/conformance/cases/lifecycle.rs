//! Conformance cases for the life of a sandbox: fork isolation, close, concurrency, and nothing
//! left behind by races or dropped calls.

use std::collections::HashMap;
use std::time::Duration;

use dagger_sandbox::{BackendKind, ErrorCode, ExecOptions, Sandbox, LABEL_SANDBOX};

use crate::harness::{expect_code, Harness};

pub(super) async fn fork_is_isolated_both_ways(h: Harness) {
    let parent = h.create().await;
    parent.write_file("shared.txt", "v1").await.unwrap();
    parent.with_env("INHERITED", "yes").unwrap();
    parent.set_workdir("app").await.unwrap();
    let child = parent.fork().await.unwrap();
    assert_ne!(child.id(), parent.id());
    assert_eq!(child.workdir(), "/workspace/app");
    assert_eq!(child.read_file("/workspace/shared.txt").await.unwrap(), b"v1");
    child.write_file("/workspace/shared.txt", "child").await.unwrap();
    child.write_file("only-child.txt", "c").await.unwrap();
    parent.write_file("only-parent.txt", "p").await.unwrap();
    assert_eq!(parent.read_file("/workspace/shared.txt").await.unwrap(), b"v1");
    assert!(!parent.exists("only-child.txt").await.unwrap());
    assert!(!child.exists("only-parent.txt").await.unwrap());
    let r = child.exec("echo $INHERITED; pwd", ExecOptions::new()).await.unwrap();
    assert!(r.stdout.starts_with("yes\n") && r.stdout.trim_end().ends_with("/workspace/app"), "{r:?}");
    child.with_env("INHERITED", "changed").unwrap();
    assert_eq!(parent.env()["INHERITED"], "yes");
    let grandchild = child.fork().await.unwrap();
    assert_eq!(grandchild.read_file("only-child.txt").await.unwrap(), b"c");
    // Closing a parent first must not break its fork.
    parent.close().await.unwrap();
    assert_eq!(child.read_file("only-child.txt").await.unwrap(), b"c");
    child.close().await.unwrap();
    grandchild.close().await.unwrap();
}

/// Engine resources still labelled with `sandbox` (docker), or its directory (local).
pub(super) async fn leftovers(h: &Harness, sb: &Sandbox) -> Vec<String> {
    leftovers_of(h, sb.id(), &sb.resource_id()).await
}

/// `leftovers` for a sandbox known only by its id and resource id (its handles are gone).
pub(super) async fn leftovers_of(h: &Harness, id: &str, resource_id: &str) -> Vec<String> {
    match h.kind {
        BackendKind::Local => {
            let dir = std::path::PathBuf::from(resource_id);
            if dir.exists() {
                vec![dir.display().to_string()]
            } else {
                vec![]
            }
        }
        _ => {
            use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
            let docker = bollard::Docker::connect_with_defaults().unwrap();
            let filters = HashMap::from([("label", vec![format!("{LABEL_SANDBOX}={id}")])]);
            let mut out: Vec<String> = docker
                .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
                .await
                .unwrap()
                .into_iter()
                .map(|c| format!("container {:?}", c.id))
                .collect();
            let images =
                docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())).await.unwrap();
            out.extend(images.into_iter().map(|i| format!("image {}", i.id)));
            out
        }
    }
}

pub(super) async fn close_is_idempotent_fails_later_calls_and_leaves_nothing(h: Harness) {
    let sb = h.create().await;
    sb.write_file("x.txt", "x").await.unwrap();
    let fork = sb.fork().await.unwrap();
    let fork2 = fork.fork().await.unwrap();
    // Close in an awkward order: the middle of the family first.
    fork.close().await.unwrap();
    fork.close().await.unwrap();
    sb.close().await.unwrap();
    fork2.close().await.unwrap();
    sb.close().await.unwrap();
    assert!(sb.is_closed());
    expect_code(sb.exec("true", ExecOptions::new()).await, ErrorCode::Closed);
    expect_code(sb.read_file("x.txt").await, ErrorCode::Closed);
    expect_code(sb.write_file("y.txt", "y").await, ErrorCode::Closed);
    expect_code(sb.fork().await, ErrorCode::Closed);
    expect_code(sb.with_env("A", "1"), ErrorCode::Closed);
    for s in [&sb, &fork, &fork2] {
        let left = leftovers(&h, s).await;
        assert!(left.is_empty(), "sandbox {} left {left:?}", s.id());
    }
}

pub(super) async fn close_during_an_exec_fails_it_with_closed(h: Harness) {
    let sb = h.create().await;
    let sb2 = sb.clone();
    let running = tokio::spawn(async move { sb2.exec("sleep 30", ExecOptions::new()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sb.close().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), running).await.expect("exec returned after close").unwrap();
    expect_code(r, ErrorCode::Closed);
    assert!(leftovers(&h, &sb).await.is_empty());
}

pub(super) async fn twenty_sandboxes_created_concurrently_all_work(h: Harness) {
    let creates = (0..20).map(|i| {
        let h = h.clone();
        async move {
            let sb = h.create_with(h.config().env("N", i.to_string())).await;
            sb.write_file("n.txt", format!("{i}")).await.unwrap();
            let r = sb.exec("echo $N-$(cat n.txt)", ExecOptions::new()).await.unwrap();
            assert_eq!(r.stdout, format!("{i}-{i}\n"));
            sb
        }
    });
    let all = futures_util::future::join_all(creates).await;
    let ids: std::collections::HashSet<_> = all.iter().map(|s| s.id().to_string()).collect();
    assert_eq!(ids.len(), 20);
    futures_util::future::join_all(all.iter().map(|s| s.close())).await.into_iter().for_each(|r| r.unwrap());
}

/// Managed engine resources carrying `label=value`, or (local) nothing to count by label.
pub(super) async fn labelled(h: &Harness, value: &str) -> usize {
    if h.kind == BackendKind::Local {
        return 0;
    }
    use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let filters = HashMap::from([("label", vec![format!("dsbx-test-case={value}")])]);
    let c = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .unwrap()
        .len();
    let i =
        docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())).await.unwrap().len();
    c + i
}

pub(super) async fn fork_racing_close_or_a_dropped_call_leaks_nothing(h: Harness) {
    let tag = uuid_like();
    let cfg = h.config().label("dsbx-test-case", tag.clone());
    let sb = h.create_with(cfg.clone()).await;
    sb.write_file("f.txt", "x").await.unwrap();
    let (fork, closed) = tokio::join!(sb.fork(), sb.close());
    closed.unwrap();
    if let Ok(child) = fork {
        child.close().await.unwrap();
    }
    // A caller that gives up early: the create and the fork still finish, then free themselves.
    let sb2 = h.create_with(cfg.clone()).await;
    let _ = tokio::time::timeout(Duration::from_millis(1), sb2.fork()).await;
    let _ = tokio::time::timeout(Duration::from_millis(1), Sandbox::create(cfg.clone())).await;
    sb2.close().await.unwrap();
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = labelled(&h, &tag).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "containers or images of this case were left behind");
    assert!(!std::path::Path::new(&sb.resource_id()).exists() || h.is_container());
}

pub(super) async fn a_sandbox_dropped_without_close_frees_itself_even_off_the_runtime(h: Harness) {
    // Bindings drop their last handle wherever the host language collects it (a JS finalizer runs
    // on a thread with no Tokio context): the cleanup must start all the same.
    let sb = h.create().await;
    sb.write_file("f.txt", "x").await.unwrap();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    let clone = sb.clone();
    std::thread::spawn(move || drop(clone)).join().unwrap();
    assert_eq!(sb.read_to_string("f.txt").await.unwrap(), "x", "a clone's drop must not free the sandbox");
    std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err(), "the drop must happen off the runtime");
        drop(sb)
    })
    .join()
    .unwrap();
    let mut left = vec![];
    for _ in 0..100 {
        left = leftovers_of(&h, &id, &resource).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "the dropped sandbox left {left:?}");
}

pub(super) fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

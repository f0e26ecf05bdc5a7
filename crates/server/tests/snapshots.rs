//! Snapshots over REST against a real Docker engine: take one of a session, change the session,
//! create a session from the snapshot and find the old files, env and workdir; the snapshot
//! outlives its session, `DELETE /api/sandbox` (clean) and a daemon restart (reconcile), and a
//! delete leaves no image of it behind.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);

async fn exec(d: &Daemon, id: &str, command: &str) -> Value {
    let (status, v) = d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(json!({"command": command}))).await;
    assert_eq!(status, 200, "exec {command}: {v}");
    v
}

/// Images still labelled with snapshot `id` (deleted snapshots kept for a running sandbox count).
async fn images_of(id: &str) -> usize {
    let filters = HashMap::from([("label", vec![format!("{}={id}", dagger_sandbox::snapshot::LABEL_SNAPSHOT)])]);
    let opts = bollard::query_parameters::ListImagesOptionsBuilder::default().all(true).filters(&filters).build();
    docker().list_images(Some(opts)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_snapshot_restores_and_outlives_clean_and_restart() {
    let (_guard, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({"env": {"MODE": "snap", "GH_TOKEN": "tok-value"}, "workingDirectory": "/srv"})).await;
    let id = s["id"].as_str().unwrap();
    exec(&d, id, "echo v1 > a.txt").await;
    let name = format!("rest-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (status, snap) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/snapshot"), Some(json!({"name": name}))).await;
    assert_eq!(status, 201, "{snap}");
    let snap_id = snap["id"].as_str().unwrap().to_string();
    assert_eq!((snap["backend"].as_str(), snap["workdir"].as_str()), (Some("docker"), Some("/srv")));
    assert_eq!(snap["env"]["MODE"], "snap");
    assert_eq!(snap["secretEnv"], json!(["GH_TOKEN"]));
    assert!(!snap.to_string().contains("tok-value"), "{snap}");
    // Taking the same name twice is refused; a bad name too.
    let (status, e) = d.call(Method::POST, &format!("/api/sandbox/{id}/snapshot"), Some(json!({"name": name}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{e}");
    let (status, _) = d.call(Method::POST, "/api/sandbox/sbx-000000000000/snapshot", None).await;
    assert_eq!(status, 404);

    exec(&d, id, "echo v2 > a.txt").await;
    let (status, restored) =
        d.call(Method::POST, "/api/sandbox", Some(json!({"fromSnapshot": name, "backend": "docker"}))).await;
    assert_eq!(status, 201, "{restored}");
    let rid = restored["id"].as_str().unwrap();
    assert_eq!(restored["workingDirectory"], "/srv");
    let r = exec(&d, rid, "cat a.txt; echo \"$MODE\"; pwd").await;
    assert_eq!(r["stdout"], "v1\nsnap\n/srv\n", "{r}");
    assert_eq!(exec(&d, id, "cat a.txt").await["stdout"], "v2\n");

    // Refusals: an image with a snapshot, an unknown snapshot.
    let (status, e) = d.call(Method::POST, "/api/sandbox", Some(json!({"fromSnapshot": name, "image": BUSYBOX}))).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = d.call(Method::POST, "/api/sandbox", Some(json!({"fromSnapshot": "snap-000000000000"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{e}");

    // clean (DELETE /api/sandbox) stops sessions, never snapshots; nor does a restart's reconcile.
    let (status, _) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!(status, 200);
    d.server.shutdown().await;
    let d = Daemon::start(dir.path(), REAP).await;
    let (status, list) = d.call(Method::GET, "/api/snapshot", None).await;
    assert_eq!(status, 200);
    assert!(list["snapshots"].as_array().unwrap().iter().any(|s| s["id"] == snap_id.as_str()), "{list}");
    let (status, one) = d.call(Method::GET, &format!("/api/snapshot/{name}"), None).await;
    assert_eq!((status, one["id"].as_str()), (200, Some(snap_id.as_str())));
    let again = d.create(json!({"image": null, "fromSnapshot": snap_id})).await;
    assert_eq!(exec(&d, again["id"].as_str().unwrap(), "cat a.txt").await["stdout"], "v1\n");

    // Deleting it while a session made from it runs: the session keeps working, and once it is
    // stopped nothing of the snapshot is left.
    let (status, gone) = d.call(Method::DELETE, &format!("/api/snapshot/{snap_id}"), None).await;
    assert_eq!((status, gone["id"].as_str()), (200, Some(snap_id.as_str())));
    let (status, _) = d.call(Method::GET, &format!("/api/snapshot/{snap_id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = d.call(Method::DELETE, &format!("/api/snapshot/{snap_id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(exec(&d, again["id"].as_str().unwrap(), "cat a.txt").await["stdout"], "v1\n");
    let (status, _) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!(status, 200);
    assert_eq!(images_of(&snap_id).await, 0, "the deleted snapshot's image is gone");
    d.server.shutdown().await;
}

//! Snapshots over the bridge binary: take one, change the sandbox, start a sandbox from it and find
//! the old state; the snapshot outlives the bridge (EOF closes sandboxes, not snapshots), a second
//! bridge finds, restores and deletes it; bad params and references get their codes.

mod common;

use common::*;
use serde_json::{json, Value};

fn configs() -> Vec<Value> {
    let mut out = vec![json!({"backend": "local"})];
    if docker_here() {
        out.push(json!({"backend": "docker", "image": BUSYBOX}));
    }
    out
}

#[test]
fn a_snapshot_restores_and_outlives_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("DAGGER_SANDBOX_SNAPSHOT_DIR", dir.path());
    let mut b = Bridge::started();
    let init_caps = b.call("initialize", json!({"protocolVersion": "1"}));
    assert!(init_caps.get("error").is_some(), "a second initialize is refused");
    let mut made = Vec::new();
    for cfg in configs() {
        let id = b.ok("sandbox/create", cfg.clone())["sandboxId"].as_str().unwrap().to_string();
        b.ok("sandbox/writeFile", json!({"sandboxId": id, "path": "a.txt", "content": "v1"}));
        b.ok("sandbox/withEnv", json!({"sandboxId": id, "env": {"MODE": "snap", "DB_PASSWORD": "pw-value"}}));
        let name = format!("bridge-{}-{}", cfg["backend"].as_str().unwrap(), std::process::id());
        let snap = b.ok("sandbox/snapshot", json!({"sandboxId": id, "name": name}));
        assert_eq!(snap["backend"], cfg["backend"]);
        assert_eq!(snap["secretEnv"], json!(["DB_PASSWORD"]));
        assert!(!snap.to_string().contains("pw-value"), "{snap}");
        b.ok("sandbox/writeFile", json!({"sandboxId": id, "path": "a.txt", "content": "v2"}));
        let restored = b.ok("sandbox/fromSnapshot", json!({"snapshot": name}));
        let rid = restored["sandboxId"].as_str().unwrap();
        let r = b.ok("sandbox/readFile", json!({"sandboxId": rid, "path": "a.txt"}));
        assert_eq!(r["content"], "v1");
        let r = b.ok("sandbox/exec", json!({"sandboxId": rid, "command": "echo $MODE"}));
        assert_eq!(r["stdout"], "snap\n");
        let listed = b.ok("snapshot/list", json!({}));
        assert!(listed["snapshots"].as_array().unwrap().iter().any(|s| s["id"] == snap["id"]), "{listed}");
        made.push((snap, name));
    }
    // Bad input: unknown fields, a missing reference, a sandbox that is not there.
    assert_eq!(code(&b.call("sandbox/snapshot", json!({"sandboxId": "x", "nmae": "typo"}))), -32602);
    assert_eq!(code(&b.call("snapshot/inspect", json!({}))), -32602);
    assert_eq!(code(&b.call("snapshot/list", json!({"all": true}))), -32602);
    assert_eq!(code(&b.call("snapshot/list", json!([]))), -32602);
    let r = b.call("snapshot/inspect", json!({"snapshot": "snap-000000000000"}));
    assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "{r}");
    let r = b.call("sandbox/fromSnapshot", json!({"snapshot": made[0].1, "config": {"image": "busybox"}}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_ARGUMENT", "{r}");
    let (status, _) = b.finish();
    assert_eq!(status, 0);

    // A second bridge (the first closed all its sandboxes at EOF) still has every snapshot.
    let mut b = Bridge::started();
    for (snap, name) in &made {
        let found = b.ok("snapshot/inspect", json!({"snapshot": name}));
        assert_eq!(found["id"], snap["id"]);
        let restored =
            b.ok("sandbox/fromSnapshot", json!({"snapshot": snap["id"], "config": {"env": {"MODE": "given"}}}));
        let r = b.ok("sandbox/exec", json!({"sandboxId": restored["sandboxId"], "command": "cat a.txt; echo $MODE"}));
        assert_eq!(r["stdout"], "v1given\n");
        b.ok("sandbox/close", json!({"sandboxId": restored["sandboxId"]}));
        let gone = b.ok("snapshot/delete", json!({"snapshot": snap["id"]}));
        assert_eq!(gone["id"], snap["id"]);
        let r = b.call("snapshot/delete", json!({"snapshot": snap["id"]}));
        assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "{r}");
    }
    b.finish();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left in the snapshots directory");
}

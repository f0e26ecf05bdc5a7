//! End to end through the real binary and daemon, on Docker and local: snapshot a session, change
//! it, start a session from the snapshot and find the old files and env; the snapshot outlives
//! `clean`; and once the sessions are stopped and the snapshots deleted, no container, image or
//! directory of ours is left.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

struct World {
    h: Harness,
}

impl World {
    fn new() -> World {
        World { h: Harness::new() }
    }

    fn snapshots_dir(&self) -> std::path::PathBuf {
        self.h.state().join("snapshots")
    }

    fn local_dir(&self) -> std::path::PathBuf {
        self.h.state().join("local")
    }

    /// The binary with the daemon's snapshot and local sandbox directories inside the state dir.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.h.cmd();
        c.env("DAGGER_SANDBOX_SNAPSHOT_DIR", self.snapshots_dir()).env("DAGGER_SANDBOX_LOCAL_DIR", self.local_dir());
        run_bounded(c.args(args), std::time::Duration::from_secs(180))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", describe(&out));
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
    }
}

/// Images labelled with snapshot `id`, in any state (a deleted snapshot kept for a running sandbox
/// counts).
fn snapshot_images(id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["images", "-a", "-q", "--filter"])
        .arg(format!("label=dev.dagger-sandbox.snapshot={id}"))
        .output()
        .expect("docker images");
    stdout(&out).split_whitespace().map(String::from).collect()
}

fn round_trip(w: &World, backend: &str) -> (Value, String) {
    let mut create = vec!["create", "--backend", backend, "--json", "-e", "MODE=snap", "--workdir", "/workspace/app"];
    if backend == "docker" {
        create.extend(["--image", BUSYBOX]);
    }
    let s = w.json(&create);
    let id = s["id"].as_str().unwrap().to_string();
    w.ok(&["exec", &id, "--", "echo v1 > a.txt"]);
    let name = format!("cli-{backend}-{}", std::process::id());
    let snap = w.json(&["snapshot", "create", &id, "--name", &name, "--json"]);
    assert_eq!((snap["backend"].as_str(), snap["workdir"].as_str()), (Some(backend), Some("/workspace/app")), "{snap}");
    w.ok(&["exec", &id, "--", "echo v2 > a.txt; touch new.txt"]);

    let restored = w.json(&["create", "--from-snapshot", &name, "--json"]);
    assert_eq!(restored["backend"].as_str(), Some(backend));
    let rid = restored["id"].as_str().unwrap();
    let out = w.ok(&["exec", rid, "--", "cat a.txt; test -e new.txt || echo no-new; echo $MODE"]);
    assert_eq!(out, "v1\nno-new\nsnap\n");
    assert_eq!(w.ok(&["exec", &id, "--", "cat a.txt"]), "v2\n", "the source keeps its own changes");
    let listed = w.ok(&["snapshot", "ls"]);
    assert!(listed.contains(&name) && listed.contains(snap["id"].as_str().unwrap()), "{listed}");
    (snap, rid.to_string())
}

#[test]
fn snapshot_change_restore_then_delete_all_leaves_nothing() {
    let w = World::new();
    let mut backends = vec!["local"];
    if docker_ready("snapshot_change_restore_then_delete_all_leaves_nothing (docker half)") {
        backends.push("docker");
    }
    let made: Vec<(Value, String)> = backends.iter().map(|b| round_trip(&w, b)).collect();

    // clean stops every session and keeps every snapshot.
    w.ok(&["clean"]);
    let after_clean = w.json(&["snapshot", "ls", "--json"]);
    for (snap, _) in &made {
        assert!(after_clean["snapshots"].as_array().unwrap().iter().any(|s| s["id"] == snap["id"]), "{after_clean}");
        let one = w.json(&["snapshot", "inspect", snap["name"].as_str().unwrap()]);
        assert_eq!(one["id"], snap["id"]);
    }

    // A bad reference is a typed error and deletes nothing.
    let out = w.run(&["snapshot", "rm", "snap-000000000000"]);
    assert!(!out.status.success() && stderr(&out).contains("(NOT_FOUND)"), "{}", describe(&out));
    let out = w.run(&["create", "--from-snapshot", "no-such-snapshot"]);
    assert!(!out.status.success() && stderr(&out).contains("(NOT_FOUND)"), "{}", describe(&out));

    let ids: Vec<&str> = made.iter().map(|(s, _)| s["id"].as_str().unwrap()).collect();
    let mut rm = vec!["snapshot", "rm", "--json"];
    rm.extend(ids.iter());
    let deleted = w.json(&rm);
    assert_eq!(deleted["deleted"].as_array().unwrap().len(), ids.len(), "{deleted}");

    let left = w.json(&["snapshot", "ls", "--json"]);
    assert!(!left["snapshots"].as_array().unwrap().iter().any(|s| ids.contains(&s["id"].as_str().unwrap())), "{left}");
    assert_eq!(w.h.containers(), Vec::<String>::new(), "no container of this daemon is left");
    for id in &ids {
        assert_eq!(snapshot_images(id), Vec::<String>::new(), "no image of snapshot {id} is left");
    }
    let entries = |d: std::path::PathBuf| -> Vec<String> {
        std::fs::read_dir(&d).map(|r| r.flatten().map(|e| e.path().display().to_string()).collect()).unwrap_or_default()
    };
    assert_eq!(entries(w.snapshots_dir()), Vec::<String>::new(), "no snapshot directory is left");
    assert_eq!(entries(w.local_dir()), Vec::<String>::new(), "no local sandbox directory is left");
}

/// `snapshot rm --all` deletes every snapshot the daemon sees. Run with no Docker engine in reach
/// (DOCKER_HOST names a socket that does not exist), so "every" is this test's local snapshots
/// and never an image someone else made on the shared engine.
#[test]
fn rm_all_deletes_every_snapshot_the_daemon_sees() {
    let w = World::new();
    let nowhere = format!("unix://{}", w.h.state().join("no-docker.sock").display());
    let run = |args: &[&str]| {
        let mut c = w.h.cmd();
        c.env("DAGGER_SANDBOX_SNAPSHOT_DIR", w.snapshots_dir())
            .env("DAGGER_SANDBOX_LOCAL_DIR", w.local_dir())
            .env("DOCKER_HOST", &nowhere);
        let out = run_bounded(c.args(args), std::time::Duration::from_secs(180));
        assert!(out.status.success(), "{args:?} failed: {}", describe(&out));
        stdout(&out)
    };
    let s: Value = serde_json::from_str(&run(&["create", "--backend", "local", "--json"])).unwrap();
    let id = s["id"].as_str().unwrap();
    for name in ["first", "second"] {
        run(&["exec", id, "--", &format!("echo {name} > f.txt")]);
        run(&["snapshot", "create", id, "--name", name]);
    }
    let listed: Value = serde_json::from_str(&run(&["snapshot", "ls", "--json"])).unwrap();
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 2, "{listed}");
    let deleted: Value = serde_json::from_str(&run(&["snapshot", "rm", "--all", "--json"])).unwrap();
    let mut names: Vec<&str> =
        deleted["deleted"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["first", "second"]);
    let left: Value = serde_json::from_str(&run(&["snapshot", "ls", "--json"])).unwrap();
    assert_eq!(left["snapshots"], serde_json::json!([]));
    assert_eq!(std::fs::read_dir(w.snapshots_dir()).unwrap().count(), 0, "the snapshots directory is empty");
    let out = w.h.cmd().args(["snapshot", "rm"]).output().unwrap();
    assert!(!out.status.success(), "rm without a reference or --all is a usage error");
    run(&["clean"]);
}

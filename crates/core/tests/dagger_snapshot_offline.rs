//! A Dagger snapshot's record, offline (no engine here): it lists, inspects and deletes without an
//! engine, and starting a sandbox from it is a typed `ENGINE_UNAVAILABLE` (or `NOT_FOUND` for a
//! record without a value id), never a hang. One test in this binary: it sets
//! `DAGGER_SANDBOX_SNAPSHOT_DIR` for the whole process.

use dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV;
use dagger_sandbox::{BackendKind, ErrorCode, Sandbox, SandboxConfig, Snapshot};

fn record(dir: &std::path::Path, id: &str, dagger_id: Option<&str>) {
    let home = dir.join(id);
    std::fs::create_dir_all(&home).unwrap();
    let mut r = serde_json::json!({
        "id": id, "name": format!("offline-{id}"), "backend": "dagger", "createdAt": "2026-11-29T18:00:00Z",
        "size": null, "workdir": "/workspace/app", "env": {"CI": "1"}, "secretEnv": ["NPM_TOKEN"],
        "image": "alpine:3.22", "source": "sbx-0123456789ab", "engineRef": ""
    });
    if let Some(d) = dagger_id {
        r["daggerId"] = serde_json::json!(d);
    }
    std::fs::write(home.join("snapshot.json"), r.to_string()).unwrap();
}

#[tokio::test]
async fn a_dagger_snapshot_record_works_offline_and_restoring_it_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    std::env::set_var(SNAPSHOT_DIR_ENV, &snaps);
    // No engine in sight: no session env, no CLI.
    for k in ["DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN", "_EXPERIMENTAL_DAGGER_CLI_BIN"] {
        std::env::remove_var(k);
    }
    std::env::set_var("PATH", dir.path());
    record(&snaps, "snap-00000000000a", Some("ctr-value-id"));
    record(&snaps, "snap-00000000000b", None);

    let s = Snapshot::inspect("offline-snap-00000000000a").await.unwrap();
    assert_eq!((s.id.as_str(), s.backend, s.engine_ref.as_str()), ("snap-00000000000a", BackendKind::Dagger, "dagger"));
    assert_eq!((s.workdir.as_str(), s.secret_env.clone()), ("/workspace/app", vec!["NPM_TOKEN".to_string()]));
    let bound = std::time::Duration::from_secs(30);
    let cfg = SandboxConfig::new().dagger_connect_timeout(std::time::Duration::from_secs(5));
    let e = tokio::time::timeout(bound, Sandbox::from_snapshot(&s.id, cfg.clone())).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineUnavailable, "{e}");
    let e = tokio::time::timeout(bound, Sandbox::from_snapshot("snap-00000000000b", cfg)).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "a record without a value id: {e}");
    assert_eq!(e.to_string(), "snapshot not found: snap-00000000000b");

    assert_eq!(Snapshot::remove("snap-00000000000a").await.unwrap().id, "snap-00000000000a");
    Snapshot::remove("snap-00000000000b").await.unwrap();
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 0);
    assert_eq!(Snapshot::remove("snap-00000000000a").await.unwrap_err().code(), ErrorCode::NotFound);
}

//! The schema as a user of the database file sees it: up, down, up again, reopen, and versions.

mod common;

use common::{raw, schema_objects, session};
use dagger_sandbox_store::{Store, LATEST_VERSION};

const CREATED: [&str; 5] = [
    "index:idx_sandbox_sessions_expires_at",
    "index:idx_sandbox_sessions_project_id",
    "index:idx_sandbox_sessions_status",
    "index:idx_sandbox_sessions_user_id",
    "table:sandbox_sessions",
];

#[test]
fn migration_up_down_up_again_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state/sessions.db");
    let store = Store::open(&path).expect("open creates the parent directories and applies 001 and 002");
    assert_eq!(LATEST_VERSION, 2);
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(schema_objects(&raw(&path)), CREATED);
    store.insert(&session("before-down", 0)).unwrap();

    store.migrate_to(0).expect("002 and 001's down files apply");
    assert_eq!(store.schema_version().unwrap(), 0);
    assert!(schema_objects(&raw(&path)).is_empty(), "down removes the table and every index");
    let err = store.insert(&session("while-down", 0)).unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");

    store.migrate_to(2).expect("001 and 002 apply again");
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(schema_objects(&raw(&path)), CREATED);
    assert_eq!(store.get("before-down").unwrap(), None, "down dropped the data with the table");
    store.insert(&session("after-up", 0)).unwrap();
    assert_eq!(store.get("after-up").unwrap().unwrap().id, "after-up");

    // Migrating to the version already applied changes nothing.
    store.migrate_to(2).unwrap();
    assert!(store.get("after-up").unwrap().is_some());
    assert_eq!(store.migrate_to(3).unwrap_err().code(), "INVALID_ARGUMENT");
}

#[test]
fn the_file_is_in_wal_mode_and_the_column_defaults_and_checks_hold_for_any_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).unwrap();
    let conn = raw(&path);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");

    // A client that names only the required columns gets the documented defaults.
    conn.execute(
        "INSERT INTO sandbox_sessions (id, provider, expires_at) VALUES ('raw', 'local', '2030-01-01T00:00:00.000Z')",
        [],
    )
    .unwrap();
    let s = store.get("raw").unwrap().unwrap();
    assert_eq!(s.working_directory, "/app");
    assert_eq!(s.metadata, serde_json::json!({}));
    assert_eq!(s.status.as_str(), "active");
    assert!(s.created_at <= chrono::Utc::now() && s.created_at == s.last_active_at);

    for (what, sql) in [
        ("provider", "INSERT INTO sandbox_sessions (id, provider, expires_at) VALUES ('p', 'podman', 'x')"),
        (
            "status",
            "INSERT INTO sandbox_sessions (id, provider, status, expires_at) VALUES ('s', 'local', 'gone', 'x')",
        ),
        (
            "metadata",
            "INSERT INTO sandbox_sessions (id, provider, metadata, expires_at) VALUES ('m', 'local', '{oops', 'x')",
        ),
        ("metadata", "UPDATE sandbox_sessions SET metadata = 'not json' WHERE id = 'raw'"),
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{what}: {err}");
    }
    assert_eq!(store.list(&Default::default()).unwrap().len(), 1, "no refused row was written");
    assert_eq!(store.get("raw").unwrap().unwrap().metadata, serde_json::json!({}));
}

#[test]
fn reopening_keeps_the_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    {
        let store = Store::open(&path).unwrap();
        store.insert(&session("kept", 0)).unwrap();
    }
    // A change a migration re-run would undo: the status index goes away behind the store's back.
    raw(&path).execute_batch("DROP INDEX idx_sandbox_sessions_status").unwrap();

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(store.get("kept").unwrap().unwrap(), session("kept", 0));
    assert!(
        !schema_objects(&raw(&path)).contains(&"index:idx_sandbox_sessions_status".to_string()),
        "no migration ran a second time"
    );
}

#[test]
fn a_database_from_a_newer_build_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    Store::open(&path).unwrap().insert(&session("mine", 0)).unwrap();
    raw(&path).pragma_update(None, "user_version", 7).unwrap();

    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.code(), "SCHEMA_TOO_NEW");
    assert!(err.to_string().contains("schema version 7"), "{err}");
    let conn = raw(&path);
    let n: i64 = conn.query_row("SELECT count(*) FROM sandbox_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    let v: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 7);
}

#[test]
fn open_reports_a_path_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("sub/sessions.db")).unwrap_err();
    assert_eq!(err.code(), "IO");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn migration_002_keeps_every_row_and_its_down_turns_stopped_into_paused() {
    use dagger_sandbox_store::{SessionUpdate, Status};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).unwrap();
    store.migrate_to(1).unwrap();
    store.insert(&session("from-001", 0)).unwrap();
    // 001 refuses the new status.
    let err = raw(&path).execute("UPDATE sandbox_sessions SET status = 'stopped'", []).unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");

    store.migrate_to(2).unwrap();
    assert_eq!(store.get("from-001").unwrap().unwrap(), session("from-001", 0), "002 keeps the row as it was");
    assert_eq!(schema_objects(&raw(&path)), CREATED, "002 rebuilds the same indexes");
    store.update("from-001", &SessionUpdate { status: Some(Status::Stopped), ..Default::default() }).unwrap();
    assert_eq!(store.get("from-001").unwrap().unwrap().status, Status::Stopped);
    assert_eq!(store.list(&Default::default()).unwrap().len(), 1, "a stopped session is listed");

    store.migrate_to(1).unwrap();
    assert_eq!(store.get("from-001").unwrap().unwrap().status, Status::Paused, "down keeps it, as paused");
    assert_eq!(schema_objects(&raw(&path)), CREATED);
}

//! What the daemon relies on from the session table: CRUD, filters, termination and expiry.

mod common;

use chrono::Duration;
use common::{at, raw, session, t0};
use dagger_sandbox_store::{ListFilter, Provider, Session, SessionUpdate, Status, Store, StoreError};
use serde_json::json;

fn store() -> Store {
    Store::open_in_memory().unwrap()
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

fn full_session() -> Session {
    Session {
        id: "sb-1".into(),
        user_id: Some("ada".into()),
        project_id: Some("engine".into()),
        provider: Provider::Dagger,
        container_id: Some("c0ffee".into()),
        status: Status::Paused,
        host_url: Some("unix:///var/run/docker.sock".into()),
        working_directory: "/workspace/src".into(),
        metadata: json!({"image": "node:22", "ports": [3000, 9229], "env": {"A": "é ✓"}, "big": 1.5e300, "n": null}),
        created_at: at(0),
        last_active_at: at(5),
        expires_at: at(3600),
        ended_reason: Some("kept for the round trip".into()),
    }
}

#[test]
fn every_field_survives_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let s = full_session();
    Store::open(&path).unwrap().insert(&s).unwrap();
    let back = Store::open(&path).unwrap().get("sb-1").unwrap().unwrap();
    assert_eq!(back, s);
    // Every None stays None too.
    let store = Store::open(&path).unwrap();
    store.insert(&session("bare", 0)).unwrap();
    assert_eq!(store.get("bare").unwrap().unwrap(), session("bare", 0));
    assert_eq!(store.get("missing").unwrap(), None);
}

#[test]
fn times_keep_milliseconds_and_lose_only_finer_digits() {
    let store = store();
    let mut s = session("precise", 0);
    s.created_at = t0() + Duration::nanoseconds(999_999);
    s.expires_at = t0() + Duration::microseconds(1_500);
    store.insert(&s).unwrap();
    let back = store.get("precise").unwrap().unwrap();
    assert_eq!(back.created_at, t0());
    assert_eq!(back.expires_at, t0() + Duration::milliseconds(1));
}

#[test]
fn metadata_that_is_not_an_object_is_refused_and_nothing_is_written() {
    let store = store();
    for bad in [json!([1, 2]), json!("text"), json!(42), json!(null)] {
        let mut s = session("bad-meta", 0);
        s.metadata = bad.clone();
        let err = store.insert(&s).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("metadata must be a JSON object"), "{bad}: {err}");
        assert_eq!(store.get("bad-meta").unwrap(), None);
    }

    store.insert(&session("good", 0)).unwrap();
    let change = SessionUpdate { metadata: Some(json!(["no"])), container_id: Some("x".into()), ..Default::default() };
    assert_eq!(store.update("good", &change).unwrap_err().code(), "INVALID_ARGUMENT");
    assert_eq!(store.get("good").unwrap().unwrap(), session("good", 0), "no field of a refused update changed");
}

#[test]
fn metadata_that_is_not_json_is_refused_by_the_table_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).unwrap();
    store.insert(&session("s", 0)).unwrap();
    // The Rust type cannot hold invalid JSON, so go through SQL the way another tool would.
    let err = raw(&path).execute("UPDATE sandbox_sessions SET metadata = '{\"a\": }' WHERE id = 's'", []).unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed: json_valid(metadata)"), "{err}");
    assert_eq!(store.get("s").unwrap().unwrap().metadata, json!({}));
}

#[test]
fn other_bad_input_is_refused_clearly() {
    let store = store();
    let mut s = session("", 0);
    assert!(store.insert(&s).unwrap_err().to_string().contains("id must not be empty"));
    s.id = "x".into();
    s.working_directory.clear();
    assert!(store.insert(&s).unwrap_err().to_string().contains("working_directory must not be empty"));
    s.working_directory = "/app".into();
    s.expires_at = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    assert!(store.insert(&s).unwrap_err().to_string().contains("outside the years"));
    assert!(store.list(&ListFilter { include_terminated: true, ..Default::default() }).unwrap().is_empty());
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_row_kept() {
    let store = store();
    store.insert(&session("dup", 0)).unwrap();
    let mut other = session("dup", 10);
    other.user_id = Some("mallory".into());
    let err = store.insert(&other).unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId(ref id) if id == "dup"), "{err:?}");
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(err.to_string().contains("'dup' already exists"), "{err}");
    assert_eq!(store.get("dup").unwrap().unwrap(), session("dup", 0));
}

#[test]
fn list_filters_and_orders_newest_first() {
    let store = store();
    let add = |id: &str, created: i64, user: &str, project: &str| {
        let mut s = session(id, created);
        s.user_id = Some(user.into());
        s.project_id = Some(project.into());
        store.insert(&s).unwrap();
    };
    add("old", 0, "ada", "p1");
    add("mid", 10, "bob", "p1");
    add("new", 20, "ada", "p2");
    add("same-time-first", 15, "ada", "p1");
    add("same-time-second", 15, "ada", "p1");
    add("ended", 30, "ada", "p1");
    store.terminate("ended", "user", at(31)).unwrap();
    store.update("mid", &SessionUpdate { status: Some(Status::Paused), ..Default::default() }).unwrap();

    let list = |f: ListFilter| ids(&store.list(&f).unwrap()).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(list(ListFilter::default()), ["new", "same-time-second", "same-time-first", "mid", "old"]);
    assert_eq!(
        list(ListFilter { include_terminated: true, ..Default::default() }),
        ["ended", "new", "same-time-second", "same-time-first", "mid", "old"]
    );
    assert_eq!(
        list(ListFilter { project_id: Some("p1".into()), ..Default::default() }),
        ["same-time-second", "same-time-first", "mid", "old"]
    );
    assert_eq!(list(ListFilter { user_id: Some("bob".into()), ..Default::default() }), ["mid"]);
    assert_eq!(
        list(ListFilter { include_terminated: true, user_id: Some("ada".into()), project_id: Some("p1".into()) }),
        ["ended", "same-time-second", "same-time-first", "old"]
    );
    assert!(list(ListFilter { user_id: Some("nobody".into()), ..Default::default() }).is_empty());
    assert_eq!(
        store.count_by_status().unwrap(),
        [(Status::Active, 4), (Status::Paused, 1), (Status::Stopped, 0), (Status::Terminated, 1)]
    );
}

#[test]
fn update_changes_only_the_given_fields() {
    let store = store();
    let original = full_session();
    store.insert(&original).unwrap();
    let change = SessionUpdate {
        container_id: Some("new-container".into()),
        status: Some(Status::Active),
        metadata: Some(json!({"image": "busybox"})),
        expires_at: Some(at(7200)),
        ..Default::default()
    };
    let updated = store.update("sb-1", &change).unwrap().unwrap();
    let expected = Session {
        container_id: Some("new-container".into()),
        status: Status::Active,
        metadata: json!({"image": "busybox"}),
        expires_at: at(7200),
        ..original.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(store.get("sb-1").unwrap().unwrap(), expected);

    let later =
        SessionUpdate { host_url: Some("tcp://h:2375".into()), last_active_at: Some(at(99)), ..Default::default() };
    let updated = store.update("sb-1", &later).unwrap().unwrap();
    assert_eq!((updated.host_url.as_deref(), updated.last_active_at), (Some("tcp://h:2375"), at(99)));
    assert_eq!(store.update("sb-1", &SessionUpdate::default()).unwrap().unwrap(), updated);
    assert_eq!(store.update("nope", &change).unwrap(), None);
}

#[test]
fn update_cannot_end_or_revive_a_session() {
    let store = store();
    store.insert(&session("s", 0)).unwrap();
    let end = SessionUpdate { status: Some(Status::Terminated), ..Default::default() };
    let err = store.update("s", &end).unwrap_err();
    assert!(err.to_string().contains("terminate the session"), "{err}");
    assert_eq!(store.get("s").unwrap().unwrap().status, Status::Active);

    store.terminate("s", "user", at(1)).unwrap();
    let revive = SessionUpdate { status: Some(Status::Active), ..Default::default() };
    assert!(store.update("s", &revive).unwrap_err().to_string().contains("is terminated"));
    assert_eq!(store.get("s").unwrap().unwrap().status, Status::Terminated);
    // Other fields of an ended session may still be recorded.
    let note = SessionUpdate { metadata: Some(json!({"exit": 0})), ..Default::default() };
    assert_eq!(store.update("s", &note).unwrap().unwrap().metadata, json!({"exit": 0}));
}

#[test]
fn touch_moves_last_active_forward_only() {
    let store = store();
    store.insert(&session("s", 0)).unwrap();
    assert!(store.touch("s", at(50)).unwrap());
    assert_eq!(store.get("s").unwrap().unwrap().last_active_at, at(50));
    assert!(store.touch("s", at(20)).unwrap(), "an older touch finds the session");
    assert_eq!(store.get("s").unwrap().unwrap().last_active_at, at(50), "but does not move time back");
    assert!(!store.touch("missing", at(60)).unwrap());
}

#[test]
fn terminate_is_idempotent_and_keeps_the_first_reason() {
    let store = store();
    store.insert(&session("s", 0)).unwrap();
    let first = store.terminate("s", "user", at(100)).unwrap().unwrap();
    assert_eq!(first.status, Status::Terminated);
    assert_eq!(first.ended_reason.as_deref(), Some("user"));
    assert_eq!(first.last_active_at, at(100));

    let again = store.terminate("s", "expired", at(200)).unwrap().unwrap();
    assert_eq!(again, first, "a second terminate changes nothing");
    assert_eq!(store.get("s").unwrap().unwrap(), first);
    assert_eq!(store.terminate("missing", "user", at(1)).unwrap(), None);
}

#[test]
fn expiry_touches_only_live_sessions_past_their_time() {
    let store = store();
    let now = at(10_000);
    let add = |id: &str, expires: chrono::DateTime<chrono::Utc>, status: Status| {
        let mut s = session(id, 0);
        s.expires_at = expires;
        s.status = status;
        store.insert(&s).unwrap();
    };
    add("active-late", now - Duration::seconds(60), Status::Active);
    add("paused-late", now - Duration::seconds(120), Status::Paused);
    add("due-now", now, Status::Active);
    add("future", now + Duration::milliseconds(1), Status::Active);
    add("ended-late", now - Duration::seconds(300), Status::Active);
    store.terminate("ended-late", "user", at(1)).unwrap();
    let ended_before = store.get("ended-late").unwrap().unwrap();

    assert_eq!(ids(&store.expired(now).unwrap()), ["paused-late", "active-late", "due-now"]);
    assert_eq!(store.get("active-late").unwrap().unwrap().status, Status::Active, "expired() only reads");

    let cleaned = store.cleanup_expired(now).unwrap();
    assert_eq!(ids(&cleaned), ["paused-late", "active-late", "due-now"]);
    for s in &cleaned {
        assert_eq!((s.status, s.ended_reason.as_deref()), (Status::Terminated, Some("expired")));
        assert_eq!(store.get(&s.id).unwrap().unwrap(), *s);
    }
    assert_eq!(store.get("ended-late").unwrap().unwrap(), ended_before, "an ended session keeps its reason");
    assert_eq!(store.get("future").unwrap().unwrap().status, Status::Active);
    assert!(store.cleanup_expired(now).unwrap().is_empty(), "a second sweep finds nothing");
    assert!(store.expired(now).unwrap().is_empty());
}

#[test]
fn clones_share_one_database_across_threads() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<Store>();
    let store = store();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || store.insert(&session(&format!("t{i}"), i)).unwrap())
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), 8);
}

#[test]
fn idle_lists_only_active_sessions_unused_since_the_cutoff_and_stopped_ones_still_expire() {
    let store = store();
    let add = |id: &str, last: i64, status: Status| {
        let mut s = session(id, 0);
        s.last_active_at = at(last);
        s.status = status;
        store.insert(&s).unwrap();
    };
    add("idle-long", 10, Status::Active);
    add("idle-just", 100, Status::Active);
    add("busy", 101, Status::Active);
    add("already-stopped", 5, Status::Stopped);
    add("ended", 1, Status::Active);
    store.terminate("ended", "user", at(1)).unwrap();
    assert_eq!(ids(&store.idle(at(100)).unwrap()), ["idle-long", "idle-just"]);
    // A touch makes a session busy again.
    store.touch("idle-long", at(200)).unwrap();
    assert_eq!(ids(&store.idle(at(100)).unwrap()), ["idle-just"]);
    // The TTL still ends a stopped session.
    let change = SessionUpdate { expires_at: Some(at(50)), ..Default::default() };
    store.update("already-stopped", &change).unwrap();
    assert!(ids(&store.expired(at(60)).unwrap()).contains(&"already-stopped"));
}

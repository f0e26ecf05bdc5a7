//! What the store does with a database another program damaged or holds: a row edited by hand, a
//! file that is not SQLite, a writer that never lets go. Each gives a typed error and loses nothing.

mod common;

use common::{raw, session};
use dagger_sandbox_store::{ListFilter, Store};

#[test]
fn a_row_edited_by_hand_is_reported_corrupt_by_id_and_the_other_rows_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).unwrap();
    store.insert(&session("good", 0)).unwrap();
    store.insert(&session("bad", 1)).unwrap();
    // Nothing in the schema checks the time columns' text: another client can write anything.
    raw(&path).execute("UPDATE sandbox_sessions SET expires_at = 'next tuesday' WHERE id = 'bad'", []).unwrap();

    let err = store.get("bad").unwrap_err();
    assert_eq!(err.code(), "CORRUPT");
    let msg = err.to_string();
    assert!(msg.contains("'bad'") && msg.contains("expires_at") && msg.contains("next tuesday"), "{msg}");
    assert_eq!(store.get("good").unwrap().unwrap(), session("good", 0));
    // A listing that meets the row says which one, rather than dropping it silently.
    let err = store.list(&ListFilter::default()).unwrap_err();
    assert_eq!(err.code(), "CORRUPT");
    assert!(err.to_string().contains("'bad'"), "{err}");
    // The row is still there for whoever repairs it.
    let n: i64 = raw(&path).query_row("SELECT count(*) FROM sandbox_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let content = b"these are somebody's notes, not SQLite; keep them\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.code(), "DATABASE", "{err}");
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), content, "the file was changed");
}

#[test]
fn a_writer_that_holds_the_lock_past_the_busy_timeout_gives_busy_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).unwrap();
    let holder = raw(&path);
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The insert waits BUSY_TIMEOUT for the lock, then gives up with a typed error, not a hang.
    let err = store.insert(&session("late", 0)).unwrap_err();
    assert_eq!(err.code(), "BUSY", "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(store.get("late").unwrap(), None);
    store.insert(&session("late", 0)).unwrap();
}

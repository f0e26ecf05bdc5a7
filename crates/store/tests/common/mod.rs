//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use dagger_sandbox_store::{Provider, Session};

/// A fixed, millisecond-precise instant so tests compare times exactly.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).unwrap() + Duration::milliseconds(535)
}

/// `t0() + secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

/// An active docker session created at `t0() + created` that expires an hour later.
pub fn session(id: &str, created: i64) -> Session {
    Session::new(id, Provider::Docker, at(created), at(created + 3600))
}

/// A raw connection on the same file, to look at the schema the way any SQLite client would.
pub fn raw(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

/// Names of the table and indexes the schema created, sorted.
pub fn schema_objects(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT type || ':' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

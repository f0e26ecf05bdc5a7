//! SQLite registry of sandbox sessions for the daemon: one table, `sandbox_sessions`, with up and down
//! migrations embedded in the binary, WAL and a busy timeout so many writers on one file wait instead of
//! failing.
//!
//! The API is synchronous (one connection behind a mutex per [`Store`]); async callers wrap calls in
//! `tokio::task::spawn_blocking`. Times are chrono `DateTime<Utc>`, stored as RFC 3339 text in UTC with
//! millisecond precision and a `Z`, so sub-millisecond digits do not survive a round trip (use
//! [`truncate_to_millis`] when a caller compares times). Everything else the daemon knows about a session
//! (image, template, isolation, ports, command) lives in its `metadata` JSON object.

mod error;
mod migrations;
mod model;
mod store;

pub use error::{Result, StoreError};
pub use migrations::LATEST_VERSION;
pub use model::{truncate_to_millis, ListFilter, Provider, Session, SessionUpdate, Status, DEFAULT_WORKING_DIRECTORY};
pub use store::{Store, BUSY_TIMEOUT};

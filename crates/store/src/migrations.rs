//! The schema's history as embedded SQL files, applied one transaction per step, with the applied
//! version kept in `PRAGMA user_version` (part of the database header, so it commits with the step).

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// One schema step and its undo.
struct Migration {
    up_name: &'static str,
    up: &'static str,
    down_name: &'static str,
    down: &'static str,
}

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        up_name: "001_initial_schema.sql",
        up: include_str!("../migrations/001_initial_schema.sql"),
        down_name: "001_initial_schema.down.sql",
        down: include_str!("../migrations/001_initial_schema.down.sql"),
    },
    Migration {
        up_name: "002_stopped_status.sql",
        up: include_str!("../migrations/002_stopped_status.sql"),
        down_name: "002_stopped_status.down.sql",
        down: include_str!("../migrations/002_stopped_status.down.sql"),
    },
];

/// The schema version this build creates (the number of migrations it carries).
pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

/// The applied version (0 for an empty database).
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))?)
}

/// Moves the schema up or down to `target`, one transaction per migration.
///
/// Each step takes the write lock first and re-reads the version under it, so several processes
/// opening a fresh file at once apply each migration exactly once.
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> Result<()> {
    if target > LATEST_VERSION {
        return Err(StoreError::InvalidArgument(format!(
            "schema version {target} does not exist (this build knows 0..={LATEST_VERSION})"
        )));
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > LATEST_VERSION {
            return Err(StoreError::SchemaTooNew { found: current, supported: LATEST_VERSION });
        }
        let (name, sql, next) = match current.cmp(&target) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Less => {
                let m = &MIGRATIONS[current as usize];
                (m.up_name, m.up, current + 1)
            }
            std::cmp::Ordering::Greater => {
                let m = &MIGRATIONS[current as usize - 1];
                (m.down_name, m.down, current - 1)
            }
        };
        let step = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", next)
        };
        // A failed step drops `tx`, which rolls the whole step back.
        step(&tx).map_err(|source| StoreError::Migration { name, source })?;
        tx.commit()?;
        tracing::info!(migration = name, version = next, "applied schema migration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_migration_leaves_the_previous_version_intact() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A table in the way makes 001 fail half-way unless the step is one transaction.
        conn.execute_batch("CREATE TABLE keep (x); CREATE INDEX idx_sandbox_sessions_status ON keep (x);").unwrap();
        let err = migrate_to(&mut conn, 1).unwrap_err();
        assert_eq!(err.code(), "MIGRATION_FAILED");
        assert!(err.to_string().contains("001_initial_schema.sql"), "{err}");
        assert_eq!(version(&conn).unwrap(), 0);
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'sandbox_sessions'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "the table created before the failure was rolled back");
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate_to(&mut conn, LATEST_VERSION + 1).unwrap_err().code(), "INVALID_ARGUMENT");
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = migrate_to(&mut conn, LATEST_VERSION).unwrap_err();
        assert_eq!(err.code(), "SCHEMA_TOO_NEW");
        assert_eq!(version(&conn).unwrap(), LATEST_VERSION + 1, "a newer database is left alone");
    }
}

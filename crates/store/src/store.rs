//! The session table's operations over one SQLite connection shared by clones of a [`Store`].

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::migrations::{self, LATEST_VERSION};
use crate::model::{
    metadata_to_text, time_from_text, time_to_text, ListFilter, Provider, Session, SessionUpdate, Status,
};

/// How long a call waits for another connection's write lock before failing with `BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Every column, in the order [`RawRow::read`] expects.
const COLUMNS: &str = "id, user_id, project_id, provider, container_id, status, host_url, working_directory, \
                       metadata, created_at, last_active_at, expires_at, ended_reason";

/// A handle on the session database; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating the file and its parent directory if needed) the database at `path` in WAL mode
    /// with a [`BUSY_TIMEOUT`], and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode = switch_to_wal(&conn)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::InvalidArgument(format!(
                "{} cannot use WAL (journal mode stayed '{mode}'); is it on a network filesystem?",
                path.display()
            )));
        }
        // NORMAL is durable against crashes of this process under WAL; only a power cut may lose the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Deleted or overwritten content (a scrubbed env value) is zeroed, not left in free pages.
        conn.pragma_update(None, "secure_delete", true)?;
        Store::init(conn)
    }

    /// A private database in memory (tests, one-shot tools).
    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "foreign_keys", true)?;
        // Reading the version needs no write lock, so opening an up-to-date database never waits on writers.
        if migrations::version(&conn)? != LATEST_VERSION {
            migrations::migrate_to(&mut conn, LATEST_VERSION)?;
        }
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left no transaction open (dropping one rolls it back).
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The applied schema version: 0 for an empty database, 1 once `001_initial_schema` is applied.
    pub fn schema_version(&self) -> Result<u32> {
        migrations::version(&self.conn())
    }

    /// Migrates up or down to `version`, one transaction per migration (0 drops the table and its data).
    pub fn migrate_to(&self, version: u32) -> Result<()> {
        migrations::migrate_to(&mut self.conn(), version)
    }

    /// Adds a session; refuses a duplicate id or metadata that is not a JSON object, writing nothing.
    pub fn insert(&self, s: &Session) -> Result<()> {
        if s.id.is_empty() {
            return Err(StoreError::InvalidArgument("session id must not be empty".into()));
        }
        if s.working_directory.is_empty() {
            return Err(StoreError::InvalidArgument("working_directory must not be empty".into()));
        }
        let metadata = metadata_to_text(&s.metadata)?;
        let (created, active, expires) =
            (time_to_text(s.created_at)?, time_to_text(s.last_active_at)?, time_to_text(s.expires_at)?);
        let conn = self.conn();
        let inserted = conn.execute(
            &format!("INSERT INTO sandbox_sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![
                s.id,
                s.user_id,
                s.project_id,
                s.provider.as_str(),
                s.container_id,
                s.status.as_str(),
                s.host_url,
                s.working_directory,
                metadata,
                created,
                active,
                expires,
                s.ended_reason,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Err(StoreError::DuplicateId(s.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The session with this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<Session>> {
        let conn = self.conn();
        get_locked(&conn, id)
    }

    /// Sessions matching `filter`, newest first (by `created_at`, then by insertion order).
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Session>> {
        let mut sql = format!("SELECT {COLUMNS} FROM sandbox_sessions WHERE 1");
        let mut args: Vec<SqlValue> = Vec::new();
        if !filter.include_terminated {
            sql.push_str(" AND status <> 'terminated'");
        }
        if let Some(p) = &filter.project_id {
            args.push(SqlValue::Text(p.clone()));
            sql.push_str(&format!(" AND project_id = ?{}", args.len()));
        }
        if let Some(u) = &filter.user_id {
            args.push(SqlValue::Text(u.clone()));
            sql.push_str(&format!(" AND user_id = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY created_at DESC, rowid DESC");
        let conn = self.conn();
        query_sessions(&conn, &sql, params_from_iter(args))
    }

    /// Changes the `Some` fields of a session and returns the new row, or `None` for an unknown id.
    ///
    /// Refuses (writing nothing) metadata that is not an object, a status of `terminated` (use
    /// [`Store::terminate`], which records why) and any status change of a terminated session.
    pub fn update(&self, id: &str, change: &SessionUpdate) -> Result<Option<Session>> {
        let mut sets: Vec<&str> = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(c) = &change.container_id {
            sets.push("container_id");
            args.push(SqlValue::Text(c.clone()));
        }
        if let Some(h) = &change.host_url {
            sets.push("host_url");
            args.push(SqlValue::Text(h.clone()));
        }
        if let Some(s) = change.status {
            if s == Status::Terminated {
                return Err(StoreError::InvalidArgument(
                    "update cannot set status 'terminated'; terminate the session so its reason is kept".into(),
                ));
            }
            sets.push("status");
            args.push(SqlValue::Text(s.as_str().into()));
        }
        if let Some(m) = &change.metadata {
            sets.push("metadata");
            args.push(SqlValue::Text(metadata_to_text(m)?));
        }
        if let Some(t) = change.expires_at {
            sets.push("expires_at");
            args.push(SqlValue::Text(time_to_text(t)?));
        }
        if let Some(t) = change.last_active_at {
            sets.push("last_active_at");
            args.push(SqlValue::Text(time_to_text(t)?));
        }

        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(current) = get_locked(&tx, id)? else { return Ok(None) };
        if sets.is_empty() {
            return Ok(Some(current));
        }
        if change.status.is_some() && current.status == Status::Terminated {
            return Err(StoreError::InvalidArgument(format!("session '{id}' is terminated; its status cannot change")));
        }
        let assignments: Vec<String> = sets.iter().enumerate().map(|(i, col)| format!("{col} = ?{}", i + 1)).collect();
        args.push(SqlValue::Text(id.to_string()));
        tx.execute(
            &format!("UPDATE sandbox_sessions SET {} WHERE id = ?{}", assignments.join(", "), args.len()),
            params_from_iter(args),
        )?;
        let updated = get_locked(&tx, id)?;
        tx.commit()?;
        Ok(updated)
    }

    /// Records activity at `at` (never moving `last_active_at` backwards); false for an unknown id.
    pub fn touch(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let at = time_to_text(at)?;
        let n = self.conn().execute(
            "UPDATE sandbox_sessions SET last_active_at = max(last_active_at, ?1) WHERE id = ?2",
            params![at, id],
        )?;
        Ok(n > 0)
    }

    /// Ends a session with `reason` (also setting `last_active_at` to `at`) and returns the row; a session
    /// that already ended is returned unchanged, keeping its first reason. `None` for an unknown id.
    pub fn terminate(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<Option<Session>> {
        let at = time_to_text(at)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sandbox_sessions SET status = 'terminated', ended_reason = ?2, \
             last_active_at = max(last_active_at, ?3) WHERE id = ?1 AND status <> 'terminated'",
            params![id, reason, at],
        )?;
        let row = get_locked(&tx, id)?;
        tx.commit()?;
        Ok(row)
    }

    /// Sessions not yet terminated whose `expires_at` is at or before `now`, soonest-expired first.
    pub fn expired(&self, now: DateTime<Utc>) -> Result<Vec<Session>> {
        let now = time_to_text(now)?;
        let conn = self.conn();
        query_sessions(
            &conn,
            &format!(
                "SELECT {COLUMNS} FROM sandbox_sessions WHERE status <> 'terminated' AND expires_at <= ?1 \
                 ORDER BY expires_at, rowid"
            ),
            params![now],
        )
    }

    /// Active sessions whose last activity is at or before `cutoff`, least recently used first:
    /// the ones an idle timeout stops.
    pub fn idle(&self, cutoff: DateTime<Utc>) -> Result<Vec<Session>> {
        let cutoff = time_to_text(cutoff)?;
        let conn = self.conn();
        query_sessions(
            &conn,
            &format!(
                "SELECT {COLUMNS} FROM sandbox_sessions WHERE status = 'active' AND last_active_at <= ?1 \
                 ORDER BY last_active_at, rowid"
            ),
            params![cutoff],
        )
    }

    /// Marks every [`Store::expired`] session terminated with reason `"expired"` and returns them as they
    /// are now. Table only: the daemon stops engine resources first and then calls [`Store::terminate`].
    pub fn cleanup_expired(&self, now: DateTime<Utc>) -> Result<Vec<Session>> {
        let now = time_to_text(now)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ended = query_sessions(
            &tx,
            &format!(
                "UPDATE sandbox_sessions SET status = 'terminated', ended_reason = 'expired' \
                 WHERE status <> 'terminated' AND expires_at <= ?1 RETURNING {COLUMNS}"
            ),
            params![now],
        )?;
        tx.commit()?;
        ended.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then_with(|| a.id.cmp(&b.id)));
        if !ended.is_empty() {
            tracing::info!(count = ended.len(), "marked expired sessions terminated");
        }
        Ok(ended)
    }

    /// How many sessions have each status, every status listed (zero included), in [`Status::ALL`] order.
    pub fn count_by_status(&self) -> Result<Vec<(Status, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT status, count(*) FROM sandbox_sessions GROUP BY status")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Status::ALL
            .into_iter()
            .map(|s| (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n)))
            .collect())
    }
}

/// Puts the database in WAL mode and returns the journal mode it ended in.
///
/// The switch reads the file and then needs the exclusive lock; when several fresh connections do this
/// at once SQLite refuses all but one straight away (`SQLITE_BUSY` without calling the busy handler, to
/// avoid a deadlock), so the switch is retried here within the same [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection) -> Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

fn get_locked(conn: &Connection, id: &str) -> Result<Option<Session>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM sandbox_sessions WHERE id = ?1"), params![id], RawRow::read)
        .optional()?
        .map(RawRow::into_session)
        .transpose()
}

fn query_sessions(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Session>> {
    let mut stmt = conn.prepare(sql)?;
    let raw = stmt.query_map(args, RawRow::read)?.collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(RawRow::into_session).collect()
}

/// A row as SQLite gave it, before the text columns are decoded (so a bad row names its id).
struct RawRow {
    id: String,
    user_id: Option<String>,
    project_id: Option<String>,
    provider: String,
    container_id: Option<String>,
    status: String,
    host_url: Option<String>,
    working_directory: String,
    metadata: String,
    created_at: String,
    last_active_at: String,
    expires_at: String,
    ended_reason: Option<String>,
}

impl RawRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            id: r.get(0)?,
            user_id: r.get(1)?,
            project_id: r.get(2)?,
            provider: r.get(3)?,
            container_id: r.get(4)?,
            status: r.get(5)?,
            host_url: r.get(6)?,
            working_directory: r.get(7)?,
            metadata: r.get(8)?,
            created_at: r.get(9)?,
            last_active_at: r.get(10)?,
            expires_at: r.get(11)?,
            ended_reason: r.get(12)?,
        })
    }

    fn into_session(self) -> Result<Session> {
        let id = self.id;
        let corrupt = |detail: String| StoreError::Corrupt { id: id.clone(), detail };
        let metadata: serde_json::Value =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt(format!("metadata is not JSON: {e}")))?;
        Ok(Session {
            provider: self.provider.parse::<Provider>().map_err(|e| corrupt(e.to_string()))?,
            status: self.status.parse::<Status>().map_err(|e| corrupt(e.to_string()))?,
            created_at: time_from_text(&self.created_at).map_err(|e| corrupt(format!("created_at: {e}")))?,
            last_active_at: time_from_text(&self.last_active_at)
                .map_err(|e| corrupt(format!("last_active_at: {e}")))?,
            expires_at: time_from_text(&self.expires_at).map_err(|e| corrupt(format!("expires_at: {e}")))?,
            user_id: self.user_id,
            project_id: self.project_id,
            container_id: self.container_id,
            host_url: self.host_url,
            working_directory: self.working_directory,
            metadata,
            ended_reason: self.ended_reason,
            id,
        })
    }
}

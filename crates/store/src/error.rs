//! The store's error type, with a stable string code the daemon can put in its responses.

/// Result of every store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller passed something the store refuses (bad metadata, unknown provider, empty id, ...);
    /// nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A session with this id already exists; nothing was written.
    #[error("invalid argument: a session with id '{0}' already exists")]
    DuplicateId(String),
    /// The database was written by a newer version of this crate; it is left untouched.
    #[error("database schema version {found} is newer than the newest this build knows ({supported})")]
    SchemaTooNew {
        /// The version recorded in the database.
        found: u32,
        /// The newest version this build has migrations for.
        supported: u32,
    },
    /// A migration failed and its transaction was rolled back.
    #[error("migration {name} failed: {source}")]
    Migration {
        /// The migration file that failed.
        name: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A row in the table does not decode (edited by hand, or by another program).
    #[error("session '{id}' in the database is unreadable: {detail}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// Which column and why.
        detail: String,
    },
    /// The database stayed locked by another writer for longer than the busy timeout.
    #[error("database is busy: {0}")]
    Busy(#[source] rusqlite::Error),
    /// The database directory could not be created.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl StoreError {
    /// The stable machine-readable code (`"INVALID_ARGUMENT"`, `"BUSY"`, ...). A duplicate id is an
    /// `INVALID_ARGUMENT` like any other refused input.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidArgument(_) | StoreError::DuplicateId(_) => "INVALID_ARGUMENT",
            StoreError::SchemaTooNew { .. } => "SCHEMA_TOO_NEW",
            StoreError::Migration { .. } => "MIGRATION_FAILED",
            StoreError::Corrupt { .. } => "CORRUPT",
            StoreError::Busy(_) => "BUSY",
            StoreError::Io { .. } => "IO",
            StoreError::Sqlite(_) => "DATABASE",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(e),
            // CHECK / NOT NULL failures come from values the Rust side did not catch (or raw SQL callers).
            Some(ErrorCode::ConstraintViolation) => {
                StoreError::InvalidArgument(format!("rejected by the database: {e}"))
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

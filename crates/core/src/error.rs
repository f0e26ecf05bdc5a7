//! The one error type of the sandbox API, with a stable string code that every surface carries.

use std::fmt;

use crate::exec::ExecResult;

/// The stable machine-readable code of an [`Error`]; JS `error.code`, bridge `data.code` and REST
/// bodies carry exactly these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No engine for the requested backend could be reached.
    EngineUnavailable,
    /// A command or operation ran past its deadline.
    Timeout,
    /// A file, directory, sandbox or image does not exist.
    NotFound,
    /// A write or delete matched one of the sandbox's `restrictedPaths`.
    RestrictedPath,
    /// A path is malformed or would leave the sandbox.
    InvalidPath,
    /// An argument or config value is not acceptable.
    InvalidArgument,
    /// The sandbox was closed before or during the call.
    Closed,
    /// The caller cancelled the call.
    Cancelled,
    /// The engine refused or failed the operation.
    EngineError,
    /// A host-side read or write failed.
    IoError,
    /// A file, listing or upload is larger than the documented limit of the call.
    TooLarge,
    /// The sandbox is stopped (its files kept, nothing running); resume it first.
    Stopped,
}

impl ErrorCode {
    /// The code as the stable string (`"NOT_FOUND"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::EngineUnavailable => "ENGINE_UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::RestrictedPath => "RESTRICTED_PATH",
            ErrorCode::InvalidPath => "INVALID_PATH",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::EngineError => "ENGINE_ERROR",
            ErrorCode::IoError => "IO_ERROR",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::Stopped => "STOPPED",
        }
    }

    /// Every code, for tables in docs and bindings.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::EngineUnavailable,
        ErrorCode::Timeout,
        ErrorCode::NotFound,
        ErrorCode::RestrictedPath,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidArgument,
        ErrorCode::Closed,
        ErrorCode::Cancelled,
        ErrorCode::EngineError,
        ErrorCode::IoError,
        ErrorCode::TooLarge,
        ErrorCode::Stopped,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in a sandbox call. Messages say what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No engine for `backend` answered; `tried` lists what was probed and `hint` how to fix it.
    #[error("no {backend} engine is available (tried: {tried}). {hint}")]
    EngineUnavailable {
        /// The backend that was asked for (`docker`, `dagger`, `auto`, ...).
        backend: String,
        /// What was probed, in order, with each failure.
        tried: String,
        /// What the user can do about it.
        hint: String,
    },
    /// A command ran past its timeout; it was killed and its output up to then is in `partial`.
    #[error("sandbox {sandbox}: command timed out after {timeout_ms} ms and was killed: {command}")]
    Timeout {
        /// The sandbox id.
        sandbox: String,
        /// The command that timed out (shortened).
        command: String,
        /// The timeout that applied.
        timeout_ms: u64,
        /// Output captured before the kill; `exit_code` is -1.
        partial: Box<ExecResult>,
    },
    /// A path (or other named thing) does not exist.
    #[error("{}{what} not found: {path}", sandbox_prefix(sandbox))]
    NotFound {
        /// The sandbox id.
        sandbox: String,
        /// What was looked for (`file`, `directory`, `image`, ...).
        what: &'static str,
        /// The path or name that was not found.
        path: String,
    },
    /// A write or delete matched a restricted-path glob.
    #[error(
        "sandbox {sandbox}: {path} is restricted by the pattern {pattern:?}; writes and deletes there are refused"
    )]
    RestrictedPath {
        /// The sandbox id.
        sandbox: String,
        /// The absolute sandbox path refused.
        path: String,
        /// The `restrictedPaths` glob it matched.
        pattern: String,
    },
    /// A path is malformed or leads outside the sandbox.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// An argument or configuration value is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The sandbox is closed.
    #[error("sandbox {sandbox} is closed; create a new sandbox (or fork before closing) to keep working")]
    Closed {
        /// The sandbox id.
        sandbox: String,
    },
    /// The sandbox is stopped: its files are kept but nothing runs until it is resumed.
    #[error("sandbox {sandbox} is stopped (its files are kept); resume it before calling it again")]
    Stopped {
        /// The sandbox id.
        sandbox: String,
    },
    /// The caller cancelled the operation; a running command was killed.
    #[error("sandbox {sandbox}: {op} was cancelled")]
    Cancelled {
        /// The sandbox id.
        sandbox: String,
        /// The operation that was cancelled.
        op: String,
    },
    /// The engine failed the operation.
    #[error("sandbox {sandbox}: {op} failed in the engine: {message}")]
    Engine {
        /// The sandbox id (empty before a sandbox exists).
        sandbox: String,
        /// The operation that failed.
        op: String,
        /// The engine's own message.
        message: String,
    },
    /// What a call would have to hold or move is over its limit; nothing was read or written.
    #[error("sandbox {sandbox}: {subject} is over the limit of {limit} bytes{}; {hint}", size_note(*size))]
    TooLarge {
        /// The sandbox id.
        sandbox: String,
        /// What was too large (`the file /workspace/big`, `the listing of /workspace`).
        subject: String,
        /// Its size in bytes, when known.
        size: Option<u64>,
        /// The limit that applied.
        limit: u64,
        /// What to use instead.
        hint: String,
    },
    /// A host-side I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::EngineUnavailable { .. } => ErrorCode::EngineUnavailable,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::RestrictedPath { .. } => ErrorCode::RestrictedPath,
            Error::InvalidPath { .. } => ErrorCode::InvalidPath,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Closed { .. } => ErrorCode::Closed,
            Error::Cancelled { .. } => ErrorCode::Cancelled,
            Error::Engine { .. } => ErrorCode::EngineError,
            Error::Io { .. } => ErrorCode::IoError,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::Stopped { .. } => ErrorCode::Stopped,
        }
    }

    /// The output a timed-out command produced before it was killed, if this is a `TIMEOUT`.
    pub fn partial_output(&self) -> Option<&ExecResult> {
        match self {
            Error::Timeout { partial, .. } => Some(partial),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// An I/O error of a stream: the sandbox error it carries (a producer that failed, see
    /// `stream::pipe`), or `IO_ERROR` with `context`.
    pub(crate) fn from_stream(context: impl Into<String>, source: std::io::Error) -> Self {
        if !source.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::io(context, source);
        }
        let kind = source.kind();
        match source.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(e)) => *e,
            Some(Err(other)) => Error::io(context, std::io::Error::new(kind, other)),
            None => Error::io(context, std::io::Error::from(kind)),
        }
    }

    /// This error as an I/O error that [`Error::from_stream`] turns back into it.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            Error::Io { source, .. } if source.get_ref().is_none() => source,
            e => std::io::Error::other(e),
        }
    }

    pub(crate) fn too_large(
        sandbox: &str,
        subject: impl Into<String>,
        size: Option<u64>,
        limit: u64,
        hint: impl Into<String>,
    ) -> Self {
        Error::TooLarge { sandbox: sandbox.to_string(), subject: subject.into(), size, limit, hint: hint.into() }
    }

    pub(crate) fn engine(sandbox: &str, op: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Engine { sandbox: sandbox.to_string(), op: op.into(), message: message.to_string() }
    }

    pub(crate) fn not_found(sandbox: &str, what: &'static str, path: impl Into<String>) -> Self {
        Error::NotFound { sandbox: sandbox.to_string(), what, path: path.into() }
    }

    pub(crate) fn invalid_path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidPath { path: path.into(), reason: reason.into() }
    }
}

/// `sandbox <id>: ` before a message about one sandbox; nothing for one about none (a snapshot).
fn sandbox_prefix(sandbox: &str) -> String {
    if sandbox.is_empty() {
        String::new()
    } else {
        format!("sandbox {sandbox}: ")
    }
}

fn size_note(size: Option<u64>) -> String {
    size.map(|s| format!(" (it is {s} bytes)")).unwrap_or_default()
}

/// The result type of every sandbox call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

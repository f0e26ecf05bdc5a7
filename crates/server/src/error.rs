//! The daemon's one error type: every failure becomes `{"error": {"code", "message"}}` with the HTTP
//! status docs/rest-api.md assigns to its code, so clients branch on codes, never on messages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dagger_sandbox::ErrorCode;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// The request itself is malformed (bad JSON, a missing parameter, a value out of range).
    #[error("{0}")]
    BadRequest(String),
    /// No session with this id (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// The session is terminated; only GET, DELETE and logs still work on it.
    #[error("session {id} has ended ({reason}); create a new session to keep working")]
    SessionEnded {
        /// The session id.
        id: String,
        /// Why it ended.
        reason: String,
    },
    /// The daemon already holds its maximum of live sandboxes (`--max-sandboxes`).
    #[error(
        "this daemon already holds {held} of its {max} live sandboxes (--max-sandboxes); stop one \
         (DELETE /api/sandbox/{{id}}) or raise the limit, then create again"
    )]
    QuotaExceeded {
        /// The cap.
        max: usize,
        /// How many are held or being created.
        held: usize,
    },
    /// A sandbox call failed; its own code is passed through unchanged.
    #[error("{0}")]
    Sandbox(#[from] dagger_sandbox::Error),
    /// A sandbox call failed because of something the request named inside the sandbox (an exec's
    /// `cwd` that does not exist): the core's code, with 409, since the route's own resource (the
    /// session) is there and 404 would say it is not.
    #[error("{0}")]
    InSandbox(dagger_sandbox::Error),
    /// The session registry failed.
    #[error("session registry: {0}")]
    Store(#[from] dagger_sandbox_store::StoreError),
    /// A request body over its documented limit.
    #[error("{0}")]
    TooLarge(String),
    /// Anything else that went wrong inside the daemon.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code carried in the body (`NOT_FOUND`, `SESSION_ENDED`, the core's codes, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::BadRequest(_) => "INVALID_ARGUMENT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::SessionEnded { .. } => "SESSION_ENDED",
            ApiError::TooLarge(_) => "TOO_LARGE",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::Sandbox(e) | ApiError::InSandbox(e) => e.code().as_str(),
            ApiError::Store(e) if e.code() == "INVALID_ARGUMENT" => "INVALID_ARGUMENT",
            ApiError::Store(_) | ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The HTTP status of this error, by its code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InSandbox(_) => StatusCode::CONFLICT,
            _ => status_of(self.code()),
        }
    }

    /// A `NOT_FOUND` for a session id nobody knows.
    pub fn no_session(id: &str) -> Self {
        ApiError::NotFound(format!("no session {id}; list them with GET /api/sandbox?all=true"))
    }
}

/// The HTTP status docs/rest-api.md gives an error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "INVALID_ARGUMENT" | "INVALID_PATH" => StatusCode::BAD_REQUEST,
        "UNAUTHORIZED" => StatusCode::UNAUTHORIZED,
        "RESTRICTED_PATH" => StatusCode::FORBIDDEN,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "SESSION_ENDED" | "CLOSED" | "STOPPED" => StatusCode::CONFLICT,
        "QUOTA_EXCEEDED" => StatusCode::TOO_MANY_REQUESTS,
        // The engine refused or failed (an image that cannot be pulled, a container that died):
        // the daemon's upstream failed, not the daemon.
        "ENGINE_ERROR" => StatusCode::BAD_GATEWAY,
        "ENGINE_UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
        "TIMEOUT" => StatusCode::GATEWAY_TIMEOUT,
        "TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "request failed: {self}");
        }
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        (status, axum::Json(body)).into_response()
    }
}

/// Whether a sandbox error means its engine resource is gone.
pub fn is_not_found(e: &dagger_sandbox::Error) -> bool {
    e.code() == ErrorCode::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_maps_to_the_documented_status() {
        let expect = |c: ErrorCode| match c {
            ErrorCode::InvalidArgument | ErrorCode::InvalidPath => 400,
            ErrorCode::RestrictedPath => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Closed | ErrorCode::Stopped => 409,
            ErrorCode::EngineError => 502,
            ErrorCode::EngineUnavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::TooLarge => 413,
            ErrorCode::Cancelled | ErrorCode::IoError => 500,
        };
        for c in ErrorCode::ALL {
            assert_eq!(status_of(c.as_str()).as_u16(), expect(c), "{c}");
        }
        assert_eq!(ApiError::SessionEnded { id: "x".into(), reason: "expired".into() }.status(), 409);
        assert_eq!(ApiError::Unauthorized("no".into()).status(), 401);
        assert_eq!(ApiError::QuotaExceeded { max: 2, held: 2 }.status(), 429);
    }
}

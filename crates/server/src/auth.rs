//! Bearer-token check for every `/api` route: the daemon listens on loopback, but other local users
//! and web pages the user visits can reach loopback too, so the token is what proves the caller.
//! The other way round, an identity proof (`GET /api/identity`) lets a client check that the
//! program at the recorded address holds the token *before* sending it: after a `kill -9`,
//! `daemon.json` stays and another local user may have bound its port.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub use dagger_sandbox_daemon_client::identity::{identity_proof, new_nonce, proof_matches, NONCE_HEX_LEN};

/// Checks a nonce sent to `GET /api/identity`: hex, of a length within [`NONCE_HEX_LEN`].
pub fn check_nonce(nonce: &str) -> Result<(), ApiError> {
    if NONCE_HEX_LEN.contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "nonce must be {} to {} hex characters",
            NONCE_HEX_LEN.start(),
            NONCE_HEX_LEN.end()
        )))
    }
}

/// Compares without stopping at the first differing byte, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `token` query parameter, for `EventSource` clients that cannot set headers.
fn query_token(req: &Request) -> Option<&str> {
    req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// Lets the request through when it carries the daemon's token, else answers 401.
pub async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let given = match header {
        Some(h) => h.strip_prefix("Bearer ").map(str::trim),
        // Only the log stream may carry the token in its URL (docs/rest-api.md).
        None if req.uri().path().ends_with("/logs") => query_token(&req),
        None => None,
    };
    match given {
        Some(t) if same(t.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => {
            ApiError::Unauthorized("wrong bearer token; it is in the token file of the daemon's state dir".into())
                .into_response()
        }
        None => ApiError::Unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (the token file is in the daemon's state dir)"
                .into(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn nonces_are_checked_for_form() {
        assert!(check_nonce(&new_nonce()).is_ok());
        assert!(check_nonce("abc").is_err());
        assert!(check_nonce(&"g".repeat(40)).is_err());
    }
}

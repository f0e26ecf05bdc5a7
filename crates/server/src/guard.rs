//! What every request passes before any route: it must be addressed to the daemon by a loopback
//! name (a DNS-rebinding page reaches 127.0.0.1 under its own host name), and a request that
//! changes state must not come from another origin (a page the user visits can send one). And
//! every error leaves in the documented shape `{"error": {"code", "message"}}`, including the
//! ones axum makes itself (a body over the limit, a path that is not UTF-8, a method a route does
//! not serve).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The longest plain-text error body read back to become a message.
const MAX_TEXT_ERROR: usize = 4096;

/// Whether `authority` (a `Host` value or an origin's host:port) names this machine's loopback.
pub fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        // [::1]:port or [::1]
        Some(rest) => match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        },
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `origin` (`scheme://host[:port]`) is the daemon itself, as its dashboard sends it.
pub fn is_same_loopback_origin(origin: &str, host: &str) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else { return false };
    is_loopback_authority(authority) && authority.eq_ignore_ascii_case(host)
}

fn forbidden(message: String) -> Response {
    let body = serde_json::json!({"error": {"code": "FORBIDDEN", "message": message}});
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// Refuses requests not addressed to a loopback name, and state-changing requests from another origin.
pub async fn loopback_only(req: Request, next: Next) -> Response {
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if !is_loopback_authority(&host) {
        return forbidden(format!(
            "the daemon answers only requests addressed to 127.0.0.1, localhost or [::1], not {host:?}"
        ));
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(origin) = req.headers().get(ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !is_same_loopback_origin(origin, &host) {
                return forbidden(format!("cross-origin {} requests are refused (Origin {origin:?})", req.method()));
            }
        }
    }
    next.run(req).await
}

/// The code a non-JSON error response of `status` gets.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "TOO_LARGE",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        s if s.is_client_error() => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// Rewrites error responses that are not JSON (axum's own rejections) into the documented shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), MAX_TEXT_ERROR).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("{text}: the request body is over the limit (docs/rest-api.md)"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow.as_ref().and_then(|a| a.to_str().ok()).unwrap_or("");
            format!("this route does not serve that method; it serves {allowed}")
        }
        _ => text,
    };
    let body = serde_json::json!({"error": {"code": code_for(status), "message": message}});
    let mut out = Response::new(Body::from(body.to_string()));
    *out.status_mut() = status;
    out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(a) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_accepted() {
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost:1", "LOCALHOST", "[::1]:9", "[::1]", "127.1.2.3:80"] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in
            ["evil.example", "evil.example:8080", "10.0.0.1:80", "", "[::2]:1", "127.0.0.1.evil.example", "[::1]x"]
        {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_daemons_own_origin_may_change_state() {
        assert!(is_same_loopback_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!is_same_loopback_origin("http://127.0.0.1:9999", "127.0.0.1:8080"), "another local port");
        assert!(!is_same_loopback_origin("https://evil.example", "127.0.0.1:8080"));
        assert!(!is_same_loopback_origin("null", "127.0.0.1:8080"));
    }
}

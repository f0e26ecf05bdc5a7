//! The HTTP surface: one table of routes (so the OpenAPI document can be checked against it), the
//! shared state handlers get, and the small request-parsing helpers that turn bad input into
//! `INVALID_ARGUMENT` answers instead of axum's plain-text rejections.

mod files;
mod logs;
mod pages;
mod sandbox;
mod snapshots;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::sessions::Sessions;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The session registry.
    pub sessions: Arc<Sessions>,
    /// Cancelled when the daemon shuts down; ends log followers so shutdown is not held open.
    pub shutdown: CancellationToken,
    /// The bearer token, for the identity proof (`GET /api/identity`).
    pub token: Arc<str>,
    /// The cap on live sandboxes.
    pub quota: Arc<crate::quota::Quota>,
    /// The OpenAPI document served (it names this daemon's templates).
    pub openapi: Arc<serde_json::Value>,
}

pub use files::{MAX_DOWNLOAD_BYTES, MAX_UPLOAD_BYTES};

type Handler = MethodRouter<AppState>;

/// Every route: method, path (axum and OpenAPI share the `{id}` syntax), whether it needs the
/// token, and its handler. The router and the OpenAPI test are both built from this one table.
fn table() -> Vec<(Method, &'static str, bool, Handler)> {
    use axum::routing::{delete, get, post, put};
    vec![
        (Method::GET, "/", false, get(pages::index)),
        (Method::GET, "/assets/app.js", false, get(pages::app_js)),
        (Method::GET, "/assets/snapshots.js", false, get(pages::snapshots_js)),
        (Method::GET, "/assets/style.css", false, get(pages::style_css)),
        (Method::GET, "/openapi.json", false, get(pages::openapi)),
        (Method::GET, "/metrics", false, get(pages::metrics)),
        (Method::GET, "/api/identity", false, get(pages::identity)),
        (Method::GET, "/api/health", true, get(pages::health)),
        (Method::GET, "/api/sandbox", true, get(sandbox::list)),
        (Method::POST, "/api/sandbox", true, post(sandbox::create)),
        (Method::DELETE, "/api/sandbox", true, delete(sandbox::stop_all)),
        (Method::GET, "/api/sandbox/{id}", true, get(sandbox::get_one)),
        (Method::DELETE, "/api/sandbox/{id}", true, delete(sandbox::stop_one)),
        (Method::POST, "/api/sandbox/{id}/exec", true, post(sandbox::exec)),
        (Method::POST, "/api/sandbox/{id}/extend", true, post(sandbox::extend)),
        (Method::POST, "/api/sandbox/{id}/stop", true, post(sandbox::stop_keeping)),
        (Method::POST, "/api/sandbox/{id}/resume", true, post(sandbox::resume)),
        (Method::POST, "/api/sandbox/{id}/attach", true, post(sandbox::attach)),
        (Method::GET, "/api/sandbox/{id}/files", true, get(files::read)),
        // Streamed and limited by the handler itself (MAX_UPLOAD_BYTES): a body limit layer only
        // applies to buffering extractors.
        (Method::PUT, "/api/sandbox/{id}/files", true, put(files::write)),
        (Method::GET, "/api/sandbox/{id}/logs", true, get(logs::stream)),
        (Method::POST, "/api/sandbox/{id}/snapshot", true, post(snapshots::take)),
        (Method::GET, "/api/snapshot", true, get(snapshots::list)),
        (Method::GET, "/api/snapshot/{ref}", true, get(snapshots::get_one)),
        (Method::DELETE, "/api/snapshot/{ref}", true, delete(snapshots::delete_one)),
    ]
}

/// Every (method, path) the router serves, for the OpenAPI check.
pub fn routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|(m, p, _, _)| (m, p)).collect()
}

/// The router: `/api` routes behind the bearer token, the rest open; unknown routes get a JSON 404;
/// every request must be addressed to a loopback name, and every error is JSON (`guard`).
pub fn router(state: AppState, token: Arc<str>, mcp: dagger_sandbox_mcp::HttpService) -> Router {
    let mut open: Router<AppState> = Router::new();
    // The MCP server (docs/mcp.md) sits behind the same token.
    let mut guarded: Router<AppState> = Router::new().route_service("/mcp", mcp);
    for (_, path, needs_token, handler) in table() {
        // A second `route` on a path adds its method to the ones already there.
        if needs_token {
            guarded = guarded.route(path, handler);
        } else {
            open = open.route(path, handler);
        }
    }
    let guarded = guarded.route_layer(axum::middleware::from_fn_with_state(token, crate::auth::require_token));
    open.merge(guarded)
        .fallback(pages::no_route)
        .layer(axum::middleware::from_fn(crate::guard::loopback_only))
        .layer(axum::middleware::from_fn(crate::guard::json_errors))
        .with_state(state)
}

/// Parses a query string into a map, as `INVALID_ARGUMENT` when it is malformed.
pub(crate) fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m).map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))
}

/// A boolean query parameter, exactly `true` or `false` as the OpenAPI document declares it;
/// `false` when absent.
pub(crate) fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!("{name} must be true or false, got {other:?}"))),
    }
}

/// Parses a JSON request body; an empty body reads as `{}`.
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

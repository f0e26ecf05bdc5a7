//! The routes outside `/api`: the placeholder dashboard, the OpenAPI document, metrics, health, and
//! the JSON 404 for unknown routes.

use axum::extract::State;
use axum::http::{header, Method, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiError;

/// `GET /`: a placeholder until the dashboard lands. It holds no token and no session data.
pub async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dagger-sandbox</title></head>\n",
        "<body><h1>dagger-sandbox daemon</h1>\n",
        "<p>The dashboard is not built yet. The REST API is described at <a href=\"/openapi.json\">/openapi.json</a>; ",
        "metrics are at <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n"
    ))
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let by_status = st.sessions.count_by_status().await?;
    let body = crate::metrics::render(&by_status, &st.sessions.counters);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// `GET /api/health`.
pub async fn health(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let by_status = st.sessions.count_by_status().await?;
    let open: u64 = by_status.iter().filter(|(s, _)| s.as_str() != "terminated").map(|(_, n)| n).sum();
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "sessions": open,
    })))
}

/// Any route not in the table.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {method} {}; see /openapi.json", uri.path()))
}

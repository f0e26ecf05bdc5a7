//! The routes outside `/api`: the dashboard (its assets are embedded in the binary, so it needs no
//! network and no files at run time), the OpenAPI document, metrics, health, and the JSON 404 for
//! unknown routes.

use axum::extract::State;
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const SNAPSHOTS_JS: &str = include_str!("../../assets/snapshots.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// Only the daemon's own origin may serve scripts, styles and API calls: a page holding the token
/// must not run or reach anything else.
const CSP: &str = "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// One embedded asset. `no-store` so a new daemon binary never runs with an old script;
/// `no-referrer` because the page is opened as `/?token=...` and the browser would otherwise send
/// that URL (token included) as the `Referer` of the asset and API requests.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard page. It holds no token and no session data; the script reads the token
/// from the page's own URL and calls the API with it.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/app.js`: the dashboard script.
pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /assets/snapshots.js`: the dashboard's snapshot panel (a module `app.js` imports).
pub async fn snapshots_js() -> Response {
    asset("text/javascript; charset=utf-8", SNAPSHOTS_JS)
}

/// `GET /assets/style.css`: the dashboard style sheet.
pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /openapi.json`.
pub async fn openapi(State(st): State<AppState>) -> Json<Value> {
    Json(st.openapi.as_ref().clone())
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

/// `GET /api/identity?nonce=<hex>` (no token): proves this daemon holds the state dir's token
/// without revealing it, so a client checks who listens before it sends the token (`auth`).
pub async fn identity(
    State(st): State<AppState>,
    q: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Json<Value>, ApiError> {
    let q = super::query(q)?;
    let nonce = q.get("nonce").map(String::as_str).unwrap_or_default();
    crate::auth::check_nonce(nonce)?;
    Ok(Json(json!({"proof": crate::auth::identity_proof(&st.token, nonce)})))
}

/// Any route not in the table.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {method} {}; see /openapi.json", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_carry_their_type_and_the_security_headers() {
        for (resp, ty) in [
            (index().await, "text/html"),
            (app_js().await, "text/javascript"),
            (snapshots_js().await, "text/javascript"),
            (style_css().await, "text/css"),
        ] {
            let h = resp.headers();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(ty), "{ty}: {h:?}");
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.starts_with("default-src 'self'; connect-src 'self'"), "{csp}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_assets() {
        // Every script and style the page names is one the daemon serves: nothing from a CDN.
        assert!(INDEX_HTML.contains("src=\"/assets/app.js\""));
        assert!(INDEX_HTML.contains("href=\"/assets/style.css\""));
        for text in [INDEX_HTML, APP_JS, SNAPSHOTS_JS, STYLE_CSS] {
            for remote in
                ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(http", "from 'http", "import('http"]
            {
                assert!(!text.contains(remote), "an asset loads something remote: {remote}");
            }
        }
    }
}

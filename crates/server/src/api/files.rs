//! `/api/sandbox/{id}/files?path=P`: raw bytes in and out, byte for byte.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{query, AppState};
use crate::error::ApiError;

fn path_param(q: &HashMap<String, String>) -> Result<&str, ApiError> {
    match q.get("path").map(String::as_str) {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(ApiError::BadRequest("the `path` query parameter is required (e.g. ?path=/app/index.js)".into())),
    }
}

/// `GET /api/sandbox/{id}/files?path=P`.
pub async fn read(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let data = st.sessions.read_file(&id, path_param(&q)?).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

/// `PUT /api/sandbox/{id}/files?path=P[&mode=644]`.
pub async fn write(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let q = query(q)?;
    let path = path_param(&q)?;
    let mode = match q.get("mode") {
        None => dagger_sandbox::DEFAULT_FILE_MODE,
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| ApiError::BadRequest(format!("mode must be octal permission bits like 644, got {m:?}")))?,
    };
    st.sessions.write_file(&id, path, &body, mode).await?;
    Ok(StatusCode::NO_CONTENT)
}

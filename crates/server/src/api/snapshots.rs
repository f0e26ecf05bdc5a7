//! `/api/snapshot` and `POST /api/sandbox/{id}/snapshot`: take, list, inspect and delete snapshots.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dagger_sandbox::Snapshot;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, AppState};
use crate::error::ApiError;

/// The body of `POST /api/sandbox/{id}/snapshot`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SnapshotRequest {
    name: Option<String>,
}

/// `POST /api/sandbox/{id}/snapshot`.
pub async fn take(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Snapshot>), ApiError> {
    let req: SnapshotRequest = json_body(&body, "snapshot request")?;
    let snap = st.sessions.snapshot(&id, req.name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(snap)))
}

/// `GET /api/snapshot`.
pub async fn list(State(_): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "snapshots": Snapshot::list().await? })))
}

/// `GET /api/snapshot/{ref}`.
pub async fn get_one(State(_): State<AppState>, Path(reference): Path<String>) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(Snapshot::inspect(&reference).await?))
}

/// `DELETE /api/snapshot/{ref}`: the deleted snapshot.
pub async fn delete_one(State(_): State<AppState>, Path(reference): Path<String>) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(Snapshot::remove(&reference).await?))
}

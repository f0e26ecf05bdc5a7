//! `/api/sandbox` and `/api/sandbox/{id}`: list, create, get, delete, exec, extend, stop, resume.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{flag, json_body, query, AppState};
use crate::error::ApiError;
use crate::sessions::{CreateRequest, ExecRequest, ExecView, SessionView, StopCause, REASON_STOPPED};

/// `GET /api/sandbox[?all=true]`.
pub async fn list(
    State(st): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let all = flag(&query(q)?, "all")?;
    let rows = st.sessions.list(all).await?;
    let views: Vec<SessionView> = rows.iter().map(SessionView::from).collect();
    Ok(Json(json!({ "sandboxes": views })))
}

/// `POST /api/sandbox`.
pub async fn create(State(st): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let req: CreateRequest = json_body(&body, "create request")?;
    // Checked here, before any engine is asked, so the answer does not depend on whether a
    // Dagger engine answers (the OpenAPI document states the same rule).
    if req.backend.as_deref() == Some("dagger")
        && (req.command.is_some() || req.ports.as_ref().is_some_and(|p| !p.is_empty()))
    {
        return Err(ApiError::BadRequest(
            "the dagger backend runs no service: leave out command and ports, or use backend \"docker\"".into(),
        ));
    }
    let _slot = st.quota.reserve(|| st.sessions.live_count())?;
    let s = st.sessions.create(req).await?;
    Ok((StatusCode::CREATED, Json(SessionView::from(&s))))
}

/// `DELETE /api/sandbox`: stops every session that is not terminated.
pub async fn stop_all(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let n = st.sessions.stop_all().await?;
    Ok(Json(json!({ "stopped": n })))
}

/// `GET /api/sandbox/{id}`.
pub async fn get_one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::from(&st.sessions.get(&id).await?)))
}

/// `DELETE /api/sandbox/{id}`.
pub async fn stop_one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionView>, ApiError> {
    let s = st.sessions.stop(&id, REASON_STOPPED).await?.ok_or_else(|| ApiError::no_session(&id))?;
    Ok(Json(SessionView::from(&s)))
}

/// `POST /api/sandbox/{id}/exec`.
pub async fn exec(State(st): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Json<ExecView>, ApiError> {
    let req: ExecRequest = json_body(&body, "exec request")?;
    match st.sessions.exec(&id, req).await {
        Ok(r) => Ok(Json(r.into())),
        // The session is there; the directory the request named is not (404 is kept for the
        // session itself).
        Err(ApiError::Sandbox(e @ dagger_sandbox::Error::NotFound { what: "working directory", .. })) => {
            Err(ApiError::InSandbox(e))
        }
        Err(e) => Err(e),
    }
}

/// The body of `POST /api/sandbox/{id}/extend`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExtendRequest {
    #[serde(deserialize_with = "crate::whole::required")]
    ttl_seconds: u64,
}

/// `POST /api/sandbox/{id}/extend`.
pub async fn extend(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SessionView>, ApiError> {
    let req: ExtendRequest = json_body(&body, "extend request")?;
    Ok(Json(SessionView::from(&st.sessions.extend(&id, req.ttl_seconds).await?)))
}

/// `POST /api/sandbox/{id}/stop`: stops the sandbox and keeps it (files kept, nothing running).
pub async fn stop_keeping(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::from(&st.sessions.suspend(&id, StopCause::User).await?)))
}

/// `POST /api/sandbox/{id}/resume`: starts a stopped sandbox again (and its service).
pub async fn resume(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::from(&st.sessions.resume(&id).await?)))
}

/// `POST /api/sandbox/{id}/attach`: what a client needs to drive the sandbox itself (its engine
/// resource and config); resumes one stopped for being idle.
pub async fn attach(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (s, config) = st.sessions.attach(&id).await?;
    let mut v = serde_json::to_value(SessionView::from(&s)).map_err(|e| ApiError::Internal(e.to_string()))?;
    v["config"] = serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(v))
}

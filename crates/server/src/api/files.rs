//! `/api/sandbox/{id}/files?path=P`: raw bytes in and out, byte for byte, streamed both ways so the
//! daemon's memory stays flat whatever the file's size (docs/rest-api.md, "Files").

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::{ReaderStream, StreamReader};

use super::{query, AppState};
use crate::error::ApiError;

/// Largest file a `PUT .../files` accepts (256 MiB). The body is spooled to a host temp file, never
/// held in memory; a bigger one is `413 TOO_LARGE`.
pub const MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;

/// Largest file a `GET .../files` sends (1 GiB), streamed as it is read; a bigger one is
/// `413 TOO_LARGE` before any of it is read. Copy bigger files out with exec (`split`, `tar`).
pub const MAX_DOWNLOAD_BYTES: u64 = 1024 * 1024 * 1024;

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
    let file = st.sessions.open_file(&id, path_param(&q)?, MAX_DOWNLOAD_BYTES).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, file.size().to_string()),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(file))).into_response())
}

/// `PUT /api/sandbox/{id}/files?path=P[&mode=644]`.
pub async fn write(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
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
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let over = Arc::new(AtomicBool::new(false));
    let chunks = body.into_data_stream().map_err(std::io::Error::other);
    let reader = Limited { inner: StreamReader::new(chunks), left: MAX_UPLOAD_BYTES, over: over.clone() };
    match st.sessions.write_file_from(&id, path, reader, mode).await {
        Err(_) if over.load(Ordering::Acquire) => Err(too_large()),
        r => r.map(|_| StatusCode::NO_CONTENT),
    }
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "the file is over the upload limit of {MAX_UPLOAD_BYTES} bytes (docs/rest-api.md); write bigger files in parts"
    ))
}

/// A reader that fails once more than `left` bytes came through, and says so in `over`.
struct Limited<R> {
    inner: R,
    left: u64,
    over: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Limited<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = (buf.filled().len() - before) as u64;
        if got > self.left {
            self.over.store(true, Ordering::Release);
            return Poll::Ready(Err(std::io::Error::other("the upload is over the limit")));
        }
        self.left -= got;
        polled
    }
}

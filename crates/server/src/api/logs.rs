//! `GET /api/sandbox/{id}/logs[?follow=true]` as server-sent events: the backlog, then (following)
//! new lines until the session ends, then an `end` event with the session's status.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{flag, query, AppState};
use crate::error::ApiError;
use crate::logs::{LogEvent, LogLine};

fn line_event(l: &LogLine) -> Event {
    Event::default().event("log").data(serde_json::to_string(l).unwrap_or_default())
}

/// The log stream of a session.
pub async fn stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let follow = flag(&query(q)?, "follow")?;
    // Unknown ids are a 404 before the stream starts.
    st.sessions.get(&id).await?;
    let (backlog, rx) = match st.sessions.logs(&id) {
        Some(log) => log.subscribe(),
        None => (Vec::new(), None),
    };
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        for l in &backlog {
            if tx.send(Ok(line_event(l))).await.is_err() {
                return;
            }
        }
        if let (true, Some(mut rx)) = (follow, rx) {
            loop {
                let ev = tokio::select! {
                    _ = tx.closed() => return,
                    _ = st.shutdown.cancelled() => break,
                    ev = rx.recv() => ev,
                };
                let event = match ev {
                    Ok(LogEvent::Line(l)) => line_event(&l),
                    Ok(LogEvent::End) | Err(broadcast::error::RecvError::Closed) => break,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let note = LogLine {
                            stream: "system",
                            text: format!("({n} lines skipped: this reader fell behind)\n"),
                            at: chrono::Utc::now(),
                        };
                        line_event(&note)
                    }
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
        let (status, reason) = match st.sessions.get(&id).await {
            Ok(s) => (s.status.as_str().to_string(), s.ended_reason),
            Err(_) => ("unknown".to_string(), None),
        };
        let end = json!({"status": status, "endedReason": reason});
        let _ = tx.send(Ok(Event::default().event("end").data(end.to_string()))).await;
    });
    Ok(Sse::new(ReceiverStream::new(out)).keep_alive(KeepAlive::default()))
}

//! The TTL reaper: sessions past `expires_at` are stopped for real (engine resources removed), not
//! only marked in the table, so a forgotten session never keeps a container running.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::sessions::{Sessions, REASON_EXPIRED};

/// Ends every expired session once; how many were ended.
pub async fn reap_once(sessions: &Sessions) -> usize {
    let expired = match sessions.db(|s| s.expired(Utc::now())).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("the reaper could not list expired sessions: {e}");
            return 0;
        }
    };
    let stops = expired.iter().map(|s| sessions.stop(&s.id, REASON_EXPIRED));
    let mut n = 0;
    for (s, r) in expired.iter().zip(futures_util::future::join_all(stops).await) {
        match r {
            Ok(Some(row)) if row.ended_reason.as_deref() == Some(REASON_EXPIRED) => {
                sessions.counters.reaped.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %s.id, expired_at = %s.expires_at, "session expired and was stopped");
                n += 1;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(session = %s.id, "stopping an expired session failed: {e}"),
        }
    }
    n
}

/// Reaps every `interval` until `stop` is cancelled.
pub async fn run(sessions: Arc<Sessions>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        reap_once(&sessions).await;
    }
}

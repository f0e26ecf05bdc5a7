//! The daemon's periodic work: the TTL reaper (sessions past `expires_at` are stopped for real,
//! engine resources removed, not only marked in the table, so a forgotten session never keeps a
//! container running), taking back sessions whose engine was down, and noticing containers
//! stopped outside the daemon (from the engine's events at once, and by a periodic check).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::sessions::{Sessions, TakeBack, REASON_EXPIRED};

/// How often sessions kept for a retry are taken back and held sessions checked against the
/// engine (events usually report a stopped container sooner).
pub const ENGINE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

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

/// Removes what dead programs of this host left behind (a Node script or a bridge client killed
/// before it could close its sandboxes), so a crash never leaks a container for longer than one reap
/// interval while a daemon runs. Only owners judged dead are touched ([`dagger_sandbox::cleanup_orphans`]):
/// never a live process's, a daemon's, or one of another host or PID namespace.
pub async fn sweep_dead_owners() -> usize {
    match dagger_sandbox::cleanup_orphans().await {
        Ok(r) => {
            let n = r.containers + r.images + r.directories;
            if n > 0 {
                tracing::info!(
                    containers = r.containers,
                    images = r.images,
                    directories = r.directories,
                    "removed sandboxes of programs that died without closing them"
                );
            }
            n
        }
        Err(e) => {
            tracing::debug!("could not sweep the sandboxes of dead programs: {e}");
            0
        }
    }
}

/// Takes back the sessions kept for a retry and checks the held ones once; (taken back, ended).
pub async fn check_engine_once(sessions: &Arc<Sessions>) -> (usize, usize) {
    let taken = sessions.take_back_pending().await.iter().filter(|t| matches!(t, TakeBack::Reattached)).count();
    (taken, sessions.check_engine_once().await)
}

/// How often idle sessions are looked for: a quarter of the idle timeout, within 1-30 s.
pub fn idle_check_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Reaps every `interval`, stops idle sessions' sandboxes (with `idle_stop`), checks the engine
/// every [`ENGINE_CHECK_INTERVAL`] and follows its events, until `stop` is cancelled.
pub async fn run(sessions: Arc<Sessions>, interval: Duration, idle_stop: Option<Duration>, stop: CancellationToken) {
    let idle = async {
        let Some(idle) = idle_stop else { return };
        let mut tick = tokio::time::interval(idle_check_interval(idle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let n = sessions.stop_idle_once(idle).await;
                    if n > 0 {
                        tracing::info!(sessions = n, "stopped the sandboxes of idle sessions (files kept)");
                    }
                }
            }
        }
    };
    let periodic = async {
        let mut reap = tokio::time::interval(interval);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(ENGINE_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await; // reconcile has just checked everything
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = reap.tick() => {
                    reap_once(&sessions).await;
                    sweep_dead_owners().await;
                }
                _ = check.tick() => { check_engine_once(&sessions).await; }
            }
        }
    };
    tokio::join!(periodic, idle, sessions.clone().watch_engine(stop.clone()));
}

//! Process-wide counters per backend (sandboxes, fallbacks, execs and their durations), so a daemon
//! or a benchmark can report what ran where without wrapping every call.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::BackendKind;

/// The counters of one backend.
#[derive(Default)]
struct Slot {
    created: AtomicU64,
    fallbacks: AtomicU64,
    execs: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    duration_ms_sum: AtomicU64,
}

// Zeroed at compile time (an inline const block, not a `const fn` that never runs after the build).
static SLOTS: [Slot; 3] = [const {
    Slot {
        created: AtomicU64::new(0),
        fallbacks: AtomicU64::new(0),
        execs: AtomicU64::new(0),
        succeeded: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        duration_ms_sum: AtomicU64::new(0),
    }
}; 3];

const KINDS: [BackendKind; 3] = [BackendKind::Dagger, BackendKind::Docker, BackendKind::Local];

fn slot(kind: BackendKind) -> &'static Slot {
    &SLOTS[KINDS.iter().position(|k| *k == kind).unwrap_or(0)]
}

/// What one backend has done in this process so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendCounters {
    /// The backend these counters are for.
    pub backend: BackendKind,
    /// Sandboxes created (forks included).
    pub sandboxes_created: u64,
    /// Sandboxes that `auto` put on this backend because a stronger one was missing.
    pub fallbacks: u64,
    /// Commands run to completion or to a timeout, cancel or engine error (validations run).
    pub execs: u64,
    /// Commands that exited 0 (validations that succeeded).
    pub execs_succeeded: u64,
    /// Commands that exited non-zero, timed out or failed in the engine.
    pub execs_failed: u64,
    /// Total wall time of the counted commands, in milliseconds.
    pub exec_duration_ms_sum: u64,
}

impl BackendCounters {
    /// Mean duration of a counted command in milliseconds, or 0 when none ran.
    pub fn mean_exec_ms(&self) -> f64 {
        if self.execs == 0 {
            0.0
        } else {
            self.exec_duration_ms_sum as f64 / self.execs as f64
        }
    }
}

/// The counters of every backend, dagger, docker and local in that order.
pub fn snapshot() -> Vec<BackendCounters> {
    KINDS
        .iter()
        .map(|&backend| {
            let s = slot(backend);
            BackendCounters {
                backend,
                sandboxes_created: s.created.load(Ordering::Relaxed),
                fallbacks: s.fallbacks.load(Ordering::Relaxed),
                execs: s.execs.load(Ordering::Relaxed),
                execs_succeeded: s.succeeded.load(Ordering::Relaxed),
                execs_failed: s.failed.load(Ordering::Relaxed),
                exec_duration_ms_sum: s.duration_ms_sum.load(Ordering::Relaxed),
            }
        })
        .collect()
}

/// Counts a sandbox created on `kind`, and whether `auto` fell back to it.
pub(crate) fn record_created(kind: BackendKind, fell_back: bool) {
    slot(kind).created.fetch_add(1, Ordering::Relaxed);
    if fell_back {
        slot(kind).fallbacks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one finished command; `success` is exit code 0.
pub(crate) fn record_exec(kind: BackendKind, success: bool, duration_ms: u64) {
    let s = slot(kind);
    s.execs.fetch_add(1, Ordering::Relaxed);
    if success { &s.succeeded } else { &s.failed }.fetch_add(1, Ordering::Relaxed);
    s.duration_ms_sum.fetch_add(duration_ms, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_per_backend_and_give_a_mean() {
        let before = snapshot();
        record_created(BackendKind::Local, true);
        record_exec(BackendKind::Local, true, 10);
        record_exec(BackendKind::Local, false, 30);
        let after = snapshot();
        let (b, a) = (before[2], after[2]);
        assert_eq!(a.backend, BackendKind::Local);
        // Other tests in this binary may count too, so compare at least the deltas made here.
        assert!(a.sandboxes_created > b.sandboxes_created && a.fallbacks > b.fallbacks);
        assert!(a.execs >= b.execs + 2 && a.execs_succeeded > b.execs_succeeded && a.execs_failed > b.execs_failed);
        assert!(a.exec_duration_ms_sum >= b.exec_duration_ms_sum + 40);
        assert!(BackendCounters { execs: 0, ..a }.mean_exec_ms() == 0.0);
        assert_eq!(BackendCounters { execs: 4, exec_duration_ms_sum: 10, ..a }.mean_exec_ms(), 2.5);
    }
}

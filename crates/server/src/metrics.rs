//! `GET /metrics` in the Prometheus text format: sessions by status from the registry, the core's
//! per-backend exec counters, and the daemon's own create/reap counters.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use dagger_sandbox_store::Status;

use crate::sessions::Counters;

/// Reads one counter of a backend.
type Getter = fn(&dagger_sandbox::metrics::BackendCounters) -> u64;

/// The metrics page.
pub fn render(by_status: &[(Status, u64)], counters: &Counters) -> String {
    let mut out = String::new();
    let name = "dagger_sandbox_sessions";
    let _ = writeln!(out, "# HELP {name} Sessions in the registry by status.\n# TYPE {name} gauge");
    for status in Status::ALL {
        let n = by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "dagger_sandbox_sessions{{status=\"{status}\"}} {n}");
    }
    let snap = dagger_sandbox::metrics::snapshot();
    let per_backend: [(&str, &str, &str, Getter); 3] = [
        ("dagger_sandbox_execs_total", "counter", "Commands run, by backend.", |c| c.execs),
        (
            "dagger_sandbox_exec_failures_total",
            "counter",
            "Commands that exited non-zero, timed out or failed, by backend.",
            |c| c.execs_failed,
        ),
        (
            "dagger_sandbox_fallbacks_total",
            "counter",
            "Sandboxes auto put on a weaker backend because a stronger one was missing.",
            |c| c.fallbacks,
        ),
    ];
    for (name, kind, help, get) in per_backend {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for c in &snap {
            let _ = writeln!(out, "{name}{{backend=\"{}\"}} {}", c.backend, get(c));
        }
    }
    let name = "dagger_sandbox_exec_duration_ms";
    let _ = writeln!(out, "# HELP {name} Wall time of commands in milliseconds, by backend.\n# TYPE {name} summary");
    for c in &snap {
        let _ = writeln!(out, "{name}_sum{{backend=\"{}\"}} {}", c.backend, c.exec_duration_ms_sum);
        let _ = writeln!(out, "{name}_count{{backend=\"{}\"}} {}", c.backend, c.execs);
    }
    for (name, help, v) in [
        ("dagger_sandbox_sessions_created_total", "Sessions created through the API.", &counters.created),
        ("dagger_sandbox_sessions_reaped_total", "Sessions the reaper stopped because they expired.", &counters.reaped),
        ("dagger_sandbox_pool_hits_total", "Creates served from a warm pool (serve --pool).", &counters.pool_hits),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_is_present_once_with_its_type() {
        let c = Counters::default();
        c.created.fetch_add(2, Ordering::Relaxed);
        let text = render(&[(Status::Active, 3)], &c);
        for needle in [
            "dagger_sandbox_sessions{status=\"active\"} 3",
            "dagger_sandbox_sessions{status=\"terminated\"} 0",
            "dagger_sandbox_execs_total{backend=\"docker\"}",
            "dagger_sandbox_exec_failures_total{backend=\"local\"}",
            "dagger_sandbox_fallbacks_total{backend=\"dagger\"}",
            "dagger_sandbox_exec_duration_ms_sum{backend=\"docker\"}",
            "dagger_sandbox_exec_duration_ms_count{backend=\"docker\"}",
            "dagger_sandbox_sessions_created_total 2",
            "dagger_sandbox_sessions_reaped_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE dagger_sandbox_sessions gauge").count(), 1);
        // Every sample line is `name{labels} value` or `name value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

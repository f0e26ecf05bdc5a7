//! A session's service output, kept as a record in the sandbox and followed from there, so it
//! survives the daemon: the service writes its stdout and stderr to two files in the sandbox
//! (`/tmp/.dagger-sandbox-service/{out,err}`; on local, under the sandbox directory), and the
//! daemon follows them with `tail -f` execs into the session log. After a restart the daemon
//! follows them again from the start of the record (the new log gets the whole history, then the
//! output still to come); after a resume, from where it had read. The record grows with the
//! service's output, on the sandbox's disk (documented in docs/configuration.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dagger_sandbox::{BackendKind, ExecOptions, OutputChunk, OutputStream, Sandbox};
use tokio::sync::mpsc;

use super::Live;
use crate::logs::LineSplitter;

/// The record's directory inside a container sandbox.
const RECORD_DIR: &str = "/tmp/.dagger-sandbox-service";

/// A follower runs as long as the sandbox; this stands in for "no timeout".
const FOLLOW_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How much of the error record a failed start quotes.
const FAILURE_TAIL_BYTES: u64 = 4000;

/// How far the daemon has read each record file (stdout, stderr), in bytes.
#[derive(Default)]
pub(crate) struct RecordOffsets([AtomicU64; 2]);

/// The record directory of `sb`, as a path its commands see.
fn record_dir(sb: &Sandbox) -> String {
    match sb.backend() {
        // Local commands run on the host: the sandbox's own /tmp is under its directory.
        BackendKind::Local => format!("{}{RECORD_DIR}", sb.resource_id()),
        _ => RECORD_DIR.to_string(),
    }
}

/// Quotes one word for `sh`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `command` with its output appended to the record instead of the exec's streams, and its pid
/// (kept through the `exec`s) in the record, so a later daemon can tell whether it still runs.
pub(crate) fn recorded(sb: &Sandbox, command: &str) -> String {
    let d = quote(&record_dir(sb));
    format!(
        "mkdir -p {d} && : >> {d}/out && : >> {d}/err && echo $$ > {d}/pid && exec >> {d}/out 2>> {d}/err && \
         exec sh -c {}",
        quote(command)
    )
}

/// Whether the service a previous daemon started still runs: its recorded pid is alive and not
/// a zombie. A service without ports has nothing else to probe, and starting it again while it
/// runs would run it twice.
pub(crate) async fn still_running(sb: &Sandbox) -> bool {
    let d = quote(&record_dir(sb));
    let cmd = format!(
        "p=$(cat {d}/pid 2>/dev/null) && [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null && \
         [ \"$(sed 's/.*) //' /proc/$p/stat | cut -c1)\" != Z ]"
    );
    match sb.exec(&cmd, ExecOptions::new().timeout(Duration::from_secs(10))).await {
        Ok(r) => r.exit_code == 0,
        Err(e) => {
            tracing::debug!(sandbox = %sb.id(), "checking the service's pid failed: {e}");
            false
        }
    }
}

/// The end of the service's error record (what a service that failed to start said).
pub(crate) async fn failure_tail(sb: &Sandbox) -> String {
    let cmd = format!("tail -c {FAILURE_TAIL_BYTES} {}/err 2>/dev/null", quote(&record_dir(sb)));
    match sb.exec(&cmd, ExecOptions::new().timeout(Duration::from_secs(10))).await {
        Ok(r) => r.stdout.trim_end().to_string(),
        Err(_) => String::new(),
    }
}

/// Ends the followers a previous daemon left in the sandbox (their output goes nowhere now).
async fn end_stale_followers(sb: &Sandbox) {
    let dir = record_dir(sb);
    let cmd = format!(
        "for p in /proc/[0-9]*; do case \"$(tr '\\000' ' ' < $p/cmdline 2>/dev/null)\" in \
         \"tail -c +\"*\"{dir}/\"*) kill ${{p#/proc/}} 2>/dev/null;; esac; done; true"
    );
    if let Err(e) = sb.exec(&cmd, ExecOptions::new().timeout(Duration::from_secs(10))).await {
        tracing::debug!(sandbox = %sb.id(), "ending stale output followers failed: {e}");
    }
}

/// Follows the service's record into the session log from the offsets `live` has read; with
/// `after_restart`, first ends the followers a previous daemon left.
pub(crate) fn follow(live: &Arc<Live>, after_restart: bool) {
    let live = live.clone();
    tokio::spawn(async move {
        if after_restart {
            end_stale_followers(&live.sandbox).await;
        }
        let dir = record_dir(&live.sandbox);
        for (slot, file, stream) in [(0, "out", OutputStream::Stdout), (1, "err", OutputStream::Stderr)] {
            let live = live.clone();
            let path = format!("{dir}/{file}");
            tokio::spawn(async move { follow_one(&live, slot, &path, stream).await });
        }
    });
}

/// Follows one record file until the sandbox stops or closes.
async fn follow_one(live: &Arc<Live>, slot: usize, path: &str, stream: OutputStream) {
    let from = live.record.0[slot].load(Ordering::SeqCst);
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(256);
    let logs = live.logs.clone();
    let record = live.clone();
    let pump = tokio::spawn(async move {
        let mut split = LineSplitter::default();
        while let Some(c) = rx.recv().await {
            record.record.0[slot].fetch_add(c.data.len() as u64, Ordering::SeqCst);
            split.chunk(&logs, &OutputChunk { stream, data: c.data });
        }
        split.flush(&logs);
    });
    // The follower may start before the service's wrapper made the record (an agent's exec is
    // faster than the service's start): make it, so `tail` never gives up on a missing file.
    let cmd = format!(
        "mkdir -p {} && : >> {p} && exec tail -c +{} -f {p}",
        quote(&record_dir(&live.sandbox)),
        from + 1,
        p = quote(path)
    );
    let opts = ExecOptions::new().timeout(FOLLOW_LIFETIME).output(tx);
    if let Err(e) = live.sandbox.exec(&cmd, opts).await {
        tracing::debug!(sandbox = %live.sandbox.id(), path, "the service output follower ended: {e}");
    }
    let _ = pump.await;
}

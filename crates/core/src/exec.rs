//! Exec options and results, the head-and-tail output cap, and the one loop that enforces timeouts,
//! cancellation and streaming for every backend.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `"stdout"` or `"stderr"`, as the bridge and REST API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// A piece of output as the command wrote it: not line-aligned, and UTF-8 may be split across chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream it was written to.
    pub stream: OutputStream,
    /// The bytes written.
    pub data: Bytes,
}

/// Per-call exec settings; everything defaults to the sandbox's own state.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExecOptions {
    /// Variables added to (and overriding) the sandbox env for this call only.
    pub env: BTreeMap<String, String>,
    /// Working directory for this call; relative paths resolve against the sandbox workdir.
    pub cwd: Option<String>,
    /// Timeout for this call; the sandbox's default when `None`.
    pub timeout: Option<Duration>,
    /// Bytes fed to the command's standard input, then EOF. Without it stdin is empty.
    pub stdin: Option<Vec<u8>>,
    /// Receives output chunks as they are written (the streaming variant). A slow receiver slows
    /// the command down rather than losing output; a dropped receiver is ignored.
    pub output: Option<mpsc::Sender<OutputChunk>>,
    /// Cancels the call: the command is killed and the call fails with `CANCELLED`.
    pub cancel: Option<CancellationToken>,
}

impl ExecOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds one variable for this call.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    /// Sets the working directory for this call.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    /// Sets the timeout for this call.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Sets the bytes fed to standard input.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    /// Streams output chunks to `tx` as they come.
    pub fn output(mut self, tx: mpsc::Sender<OutputChunk>) -> Self {
        self.output = Some(tx);
        self
    }
    /// Lets `token` cancel the call.
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// What a finished command produced. A non-zero `exit_code` is a result, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// The command's exit code (`-1` when it was killed before it exited).
    pub exit_code: i64,
    /// Standard output, UTF-8 (invalid bytes replaced); head and tail kept when over the cap.
    pub stdout: String,
    /// Standard error, as `stdout`.
    pub stderr: String,
    /// Wall time from start to the end of output, in milliseconds.
    pub duration_ms: u64,
    /// Whether either stream went over the output cap and lost its middle.
    pub truncated: bool,
    /// Bytes of stdout dropped from the middle.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped from the middle.
    pub stderr_dropped: u64,
}

impl ExecResult {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Keeps the first and last bytes of a stream within a cap and counts what it drops between them.
#[derive(Debug)]
pub(crate) struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl Capture {
    /// A capture that keeps at most `cap` bytes: half from the start, half from the end.
    pub fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Capture { head_cap, tail_cap: cap - head_cap, head: Vec::new(), tail: VecDeque::new(), dropped: 0 }
    }

    /// Appends output, dropping from the middle once over the cap.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.head.len() < self.head_cap {
            let n = data.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.tail_cap {
            self.dropped += (self.tail.len() + data.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let over = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
        self.tail.extend(data);
    }

    /// Counts `n` bytes the engine already dropped from the middle (it sent only the head and
    /// the tail, which fit the cap).
    pub fn dropped_upstream(&mut self, n: u64) {
        self.dropped += n;
    }

    /// The kept text (with a marker where bytes were dropped) and the count dropped.
    pub fn finish(self) -> (String, u64) {
        let mut bytes = self.head;
        if self.dropped > 0 {
            bytes.extend_from_slice(format!("\n[... {} bytes dropped ...]\n", self.dropped).as_bytes());
        }
        bytes.extend(self.tail);
        (String::from_utf8_lossy(&bytes).into_owned(), self.dropped)
    }
}

/// How a command's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecEnd {
    /// It exited (or its output ended) on its own.
    Exited,
    /// It ran past the timeout and was killed.
    TimedOut,
    /// The caller cancelled it and it was killed.
    Cancelled,
    /// The sandbox was closed under it.
    Closed,
}

/// The raw outcome of a run, before it becomes an [`ExecResult`] or an error.
#[derive(Debug)]
pub(crate) struct ExecOutcome {
    pub end: ExecEnd,
    pub result: ExecResult,
}

/// A command started by a backend: its output, a way to kill it, and its exit code.
#[async_trait]
pub(crate) trait RunningExec: Send {
    /// The next piece of output; `None` once every writer has closed.
    async fn next_chunk(&mut self) -> Option<Result<OutputChunk>>;
    /// A future that kills the command and everything it started. It owns what it needs, so
    /// output can keep being drained while it runs: an engine may not finish a kill while the
    /// command's output is left unread.
    fn kill(&self) -> BoxFuture<'static, Result<()>>;
    /// Waits for the exit code (called once output has ended). May wait as long as the command
    /// runs; the caller bounds it with the timeout. Must be cancel-safe.
    async fn exit_code(&mut self) -> Result<i64>;
    /// Bytes of (stdout, stderr) the engine dropped from the middle before sending the output,
    /// for engines that apply the output cap themselves (known once output has ended).
    fn dropped_in_engine(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// How long output may keep coming after a kill before the loop stops waiting for it.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Drives a running command to its end: captures and streams output, and kills it on timeout,
/// on cancel, or when the sandbox closes (`closing`). The deadline, cancel and close are watched
/// at every step (reading output, waiting for a slow stream receiver, waiting for the exit code),
/// so no command and no consumer can make a call outlive its timeout.
pub(crate) async fn drive(
    mut run: Box<dyn RunningExec>,
    timeout: Duration,
    output_cap: usize,
    sink: Option<mpsc::Sender<OutputChunk>>,
    cancel: CancellationToken,
    closing: CancellationToken,
) -> Result<ExecOutcome> {
    let start = Instant::now();
    let mut out = Capture::new(output_cap);
    let mut err = Capture::new(output_cap);
    let mut end = ExecEnd::Exited;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut sink = sink;
    // A chunk waiting for room in the receiver; output is not read meanwhile (backpressure).
    let mut pending: Option<OutputChunk> = None;
    let mut output_open = true;
    let mut exit_code: Option<i64> = None;
    let mut failure: Option<crate::Error> = None;
    let mut killing: Option<BoxFuture<'static, Result<()>>> = None;
    while exit_code.is_none() {
        let killed = end != ExecEnd::Exited;
        let mut receiver_gone = false;
        let mut start_kill = false;
        tokio::select! {
            biased;
            _ = &mut deadline => {
                if killed {
                    break; // still not done a grace period after the kill: stop waiting
                }
                end = ExecEnd::TimedOut;
                start_kill = true;
            }
            _ = cancel.cancelled(), if !killed => {
                end = ExecEnd::Cancelled;
                start_kill = true;
            }
            _ = closing.cancelled(), if !killed => {
                end = ExecEnd::Closed;
                // The container is going away; the kill only matters for a local sandbox.
                tokio::spawn(log_kill(run.kill()));
                break;
            }
            r = async { killing.as_mut().expect("guarded by killing.is_some()").await }, if killing.is_some() => {
                killing = None;
                if let Err(e) = r {
                    tracing::warn!("killing a command failed: {e}");
                }
            }
            permit = reserve(&sink), if pending.is_some() => {
                let chunk = pending.take().expect("guarded by pending.is_some()");
                match permit {
                    Some(p) => p.send(chunk),
                    None => receiver_gone = true,
                }
            }
            step = step(&mut *run, output_open), if pending.is_none() => match step {
                Step::Chunk(Ok(c)) => {
                    match c.stream {
                        OutputStream::Stdout => out.push(&c.data),
                        OutputStream::Stderr => err.push(&c.data),
                    }
                    if sink.is_some() {
                        pending = Some(c);
                    }
                }
                Step::Chunk(Err(e)) => {
                    tokio::spawn(log_kill(run.kill()));
                    failure = Some(e);
                    break;
                }
                Step::OutputEnded => output_open = false,
                Step::Exit(Ok(c)) => exit_code = Some(c),
                Step::Exit(Err(e)) if killed => {
                    tracing::debug!("exit code after a kill: {e}");
                    exit_code = Some(-1);
                }
                Step::Exit(Err(e)) => {
                    failure = Some(e);
                    break;
                }
            },
        }
        if receiver_gone {
            sink = None; // the receiver went away; keep capturing
        }
        if start_kill {
            // Stop feeding the stream receiver (it may be what stalled us) and keep draining the
            // output while the kill runs, so the engine is never stuck writing to us.
            sink = None;
            pending = None;
            killing = Some(run.kill());
            deadline.as_mut().reset(tokio::time::Instant::now() + KILL_GRACE);
        }
    }
    if let Some(kill) = killing {
        // The command ended while its kill was still at work (the kill itself ended it): let the
        // kill finish, so a process it found but had not signalled yet is not left behind.
        tokio::spawn(log_kill(kill));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (out_dropped, err_dropped) = run.dropped_in_engine();
    out.dropped_upstream(out_dropped);
    err.dropped_upstream(err_dropped);
    let duration_ms = start.elapsed().as_millis() as u64;
    let (stdout, stdout_dropped) = out.finish();
    let (stderr, stderr_dropped) = err.finish();
    Ok(ExecOutcome {
        end,
        result: ExecResult {
            exit_code: if end == ExecEnd::Exited { exit_code.unwrap_or(-1) } else { -1 },
            stdout,
            stderr,
            duration_ms,
            truncated: stdout_dropped > 0 || stderr_dropped > 0,
            stdout_dropped,
            stderr_dropped,
        },
    })
}

/// One step of a running command: a piece of output while output is open, then its exit code.
enum Step {
    Chunk(Result<OutputChunk>),
    OutputEnded,
    Exit(Result<i64>),
}

async fn step(run: &mut dyn RunningExec, output_open: bool) -> Step {
    if output_open {
        match run.next_chunk().await {
            Some(c) => Step::Chunk(c),
            None => Step::OutputEnded,
        }
    } else {
        Step::Exit(run.exit_code().await)
    }
}

/// Room for one chunk in the stream receiver, or `None` when it is gone (or there is none).
async fn reserve(sink: &Option<mpsc::Sender<OutputChunk>>) -> Option<mpsc::Permit<'_, OutputChunk>> {
    match sink {
        Some(tx) => tx.reserve().await.ok(),
        None => None,
    }
}

/// Runs a kill whose outcome nobody waits for; a failure is logged.
async fn log_kill(kill: BoxFuture<'static, Result<()>>) {
    if let Err(e) = kill.await {
        tracing::warn!("killing a command failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_under_the_cap_keeps_everything() {
        let mut c = Capture::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.finish(), ("hello world".to_string(), 0));
    }

    #[test]
    fn capture_over_the_cap_keeps_head_and_tail_and_counts_the_middle() {
        let mut c = Capture::new(10);
        for chunk in [&b"0123"[..], b"4567", b"89ab", b"cdef", b"ghij"] {
            c.push(chunk);
        }
        let (text, dropped) = c.finish();
        assert_eq!(dropped, 10);
        assert_eq!(text, "01234\n[... 10 bytes dropped ...]\nfghij");
    }

    #[test]
    fn capture_handles_one_huge_chunk() {
        let mut c = Capture::new(8);
        let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        c.push(&data);
        let (text, dropped) = c.finish();
        assert_eq!(dropped, 992);
        assert!(text.starts_with("abcd\n[... 992 bytes dropped ...]\n"), "{text}");
        assert!(text.ends_with(std::str::from_utf8(&data[996..]).unwrap()));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut c = Capture::new(100);
        c.push(&[b'o', b'k', 0xff, 0xfe]);
        assert_eq!(c.finish().0, "ok\u{fffd}\u{fffd}");
    }
}

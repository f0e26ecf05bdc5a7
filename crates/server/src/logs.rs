//! Per-session output log: a bounded ring of lines for late readers plus a broadcast for followers,
//! fed by the service process and by every exec run through the API.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use dagger_sandbox::{OutputChunk, OutputStream};
use serde::Serialize;
use tokio::sync::broadcast;

/// Lines kept per session; older lines are dropped first.
pub const RING_LINES: usize = 2000;
/// Longest line kept; a longer one is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// How many lines a follower may fall behind before it skips ahead.
const FOLLOW_BUFFER: usize = 1024;

/// One line of a session's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// `stdout`, `stderr` or `system` (lines the daemon adds).
    pub stream: &'static str,
    /// The text, with its trailing newline when it had one.
    pub text: String,
    /// When the daemon received it.
    pub at: DateTime<Utc>,
}

/// What followers receive.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// A new line.
    Line(LogLine),
    /// The session ended; no more lines will come.
    End,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    ended: bool,
}

/// The log of one session.
pub struct LogBuffer {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<LogEvent>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LogBuffer {
    /// An empty log.
    pub fn new() -> Self {
        LogBuffer { inner: Mutex::new(Inner::default()), tx: broadcast::channel(FOLLOW_BUFFER).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one line.
    pub fn push(&self, stream: &'static str, text: String) {
        let line = LogLine { stream, text, at: Utc::now() };
        let mut inner = self.lock();
        if inner.lines.len() == RING_LINES {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line.clone());
        // No follower is not an error.
        let _ = self.tx.send(LogEvent::Line(line));
    }

    /// Adds a line the daemon writes (`$ command`, exit codes, lifecycle notes).
    pub fn system(&self, text: impl Into<String>) {
        let mut text = text.into();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        self.push("system", text);
    }

    /// Marks the log ended and wakes every follower.
    pub fn end(&self) {
        let mut inner = self.lock();
        if !inner.ended {
            inner.ended = true;
            let _ = self.tx.send(LogEvent::End);
        }
    }

    /// The lines so far, and (unless the log has ended) a receiver of every later event. Taken under
    /// one lock, so a follower neither misses nor repeats a line.
    pub fn subscribe(&self) -> (Vec<LogLine>, Option<broadcast::Receiver<LogEvent>>) {
        let inner = self.lock();
        let rx = (!inner.ended).then(|| self.tx.subscribe());
        (inner.lines.iter().cloned().collect(), rx)
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let inner = self.lock();
        inner.lines.iter().skip(inner.lines.len().saturating_sub(n)).cloned().collect()
    }
}

/// Cuts one process's output chunks (not line-aligned, UTF-8 possibly split) into lines. One per
/// source, so a service and an exec writing at once never splice each other's lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: [Vec<u8>; 2],
}

impl LineSplitter {
    /// Adds a chunk, sending every completed line to `log`.
    pub fn chunk(&mut self, log: &LogBuffer, chunk: &OutputChunk) {
        let (slot, stream) = match chunk.stream {
            OutputStream::Stdout => (0, "stdout"),
            OutputStream::Stderr => (1, "stderr"),
        };
        let mut buf = std::mem::take(&mut self.partial[slot]);
        buf.extend_from_slice(&chunk.data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl + 1;
            emit(log, stream, &buf[start..end]);
            start = end;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_LINE_BYTES {
            let tail = rest.split_off(MAX_LINE_BYTES);
            emit(log, stream, &rest);
            rest = tail;
        }
        self.partial[slot] = rest;
    }

    /// Sends what is left of unterminated lines (the process ended).
    pub fn flush(&mut self, log: &LogBuffer) {
        for (slot, stream) in [(0, "stdout"), (1, "stderr")] {
            let rest = std::mem::take(&mut self.partial[slot]);
            if !rest.is_empty() {
                emit(log, stream, &rest);
            }
        }
    }
}

fn emit(log: &LogBuffer, stream: &'static str, bytes: &[u8]) {
    for piece in bytes.chunks(MAX_LINE_BYTES) {
        log.push(stream, String::from_utf8_lossy(piece).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(stream: OutputStream, s: &str) -> OutputChunk {
        OutputChunk { stream, data: s.as_bytes().to_vec().into() }
    }

    #[test]
    fn chunks_become_lines_per_stream_and_the_ring_is_bounded() {
        let log = LogBuffer::new();
        let mut rx = log.subscribe().1.unwrap();
        let mut split = LineSplitter::default();
        split.chunk(&log, &chunk(OutputStream::Stdout, "hel"));
        split.chunk(&log, &chunk(OutputStream::Stderr, "oops\n"));
        split.chunk(&log, &chunk(OutputStream::Stdout, "lo\nwor"));
        log.system("$ true");
        split.flush(&log);
        log.end();
        let texts: Vec<_> = log.subscribe().0.into_iter().map(|l| (l.stream, l.text)).collect();
        assert_eq!(
            texts,
            vec![
                ("stderr", "oops\n".to_string()),
                ("stdout", "hello\n".to_string()),
                ("system", "$ true\n".to_string()),
                ("stdout", "wor".to_string()),
            ]
        );
        assert!(matches!(rx.try_recv().unwrap(), LogEvent::Line(l) if l.text == "oops\n"));
        assert!(log.subscribe().1.is_none(), "an ended log has nothing to follow");
        for i in 0..RING_LINES + 10 {
            log.system(format!("{i}"));
        }
        let lines = log.subscribe().0;
        assert_eq!(lines.len(), RING_LINES);
        assert_eq!(lines.last().unwrap().text, format!("{}\n", RING_LINES + 9));
        assert_eq!(log.tail(2).len(), 2);
    }

    #[test]
    fn an_endless_line_is_cut_into_bounded_pieces() {
        let log = LogBuffer::new();
        let mut split = LineSplitter::default();
        split.chunk(&log, &chunk(OutputStream::Stdout, &"x".repeat(MAX_LINE_BYTES * 2 + 5)));
        split.flush(&log);
        let lens: Vec<_> = log.subscribe().0.iter().map(|l| l.text.len()).collect();
        assert_eq!(lens, vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 5]);
    }
}

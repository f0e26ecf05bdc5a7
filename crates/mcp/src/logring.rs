//! A bounded log of output lines with cursors: the output of services and background commands,
//! kept for `service_logs` without growing without limit (old lines fall off the front).

use std::collections::VecDeque;
use std::sync::Mutex;

use dagger_sandbox::{OutputChunk, OutputStream};
use serde::Serialize;

/// Lines a log keeps; older ones are dropped (and counted).
pub const LOG_LINES_KEPT: usize = 2000;
/// Longest line kept; longer ones are cut (a command printing without newlines cannot grow one line forever).
pub const LOG_LINE_MAX: usize = 8192;

/// One line of output.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LogLine {
    /// Its cursor: pass `since: seq + 1` to read only newer lines.
    pub seq: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its newline.
    pub text: String,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    next: u64,
    partial: [Vec<u8>; 2],
}

/// A bounded, shared output log.
#[derive(Default)]
pub struct LogRing {
    inner: Mutex<Inner>,
}

impl LogRing {
    /// Adds a chunk of output, split into lines (a partial line waits for its end).
    pub fn push(&self, chunk: &OutputChunk) {
        let idx = usize::from(chunk.stream == OutputStream::Stderr);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        for &b in chunk.data.iter() {
            if b == b'\n' {
                let line = std::mem::take(&mut inner.partial[idx]);
                inner.add(chunk.stream, &line);
            } else if inner.partial[idx].len() < LOG_LINE_MAX {
                inner.partial[idx].push(b);
            }
        }
    }

    /// Flushes partial lines (the command ended without a final newline).
    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (idx, stream) in [OutputStream::Stdout, OutputStream::Stderr].into_iter().enumerate() {
            let line = std::mem::take(&mut g.partial[idx]);
            if !line.is_empty() {
                g.add(stream, &line);
            }
        }
    }

    /// Lines with `seq >= since`, at most the last `tail`; and the cursor after the newest line.
    pub fn read(&self, since: u64, tail: usize) -> (Vec<LogLine>, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let matching: Vec<&LogLine> = g.lines.iter().filter(|l| l.seq >= since).collect();
        let skip = matching.len().saturating_sub(tail);
        (matching[skip..].iter().map(|l| (*l).clone()).collect(), g.next)
    }
}

impl Inner {
    fn add(&mut self, stream: OutputStream, bytes: &[u8]) {
        if self.lines.len() == LOG_LINES_KEPT {
            self.lines.pop_front();
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        self.lines.push_back(LogLine { seq: self.next, stream: stream.as_str().to_string(), text });
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(s: &str) -> OutputChunk {
        OutputChunk { stream: OutputStream::Stdout, data: s.as_bytes().to_vec().into() }
    }

    #[test]
    fn lines_split_across_chunks_are_joined_and_cursors_page() {
        let log = LogRing::default();
        log.push(&chunk("a\nb"));
        log.push(&chunk("c\nd"));
        log.flush();
        let (lines, next) = log.read(0, 100);
        assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["a", "bc", "d"]);
        assert_eq!(next, 3);
        assert_eq!(log.read(2, 100).0.len(), 1);
        assert_eq!(log.read(0, 1).0[0].text, "d");
    }

    #[test]
    fn the_log_stays_bounded() {
        let log = LogRing::default();
        for _ in 0..LOG_LINES_KEPT + 10 {
            log.push(&chunk("x\n"));
        }
        log.push(&chunk(&"y".repeat(LOG_LINE_MAX * 2)));
        log.flush();
        let (lines, next) = log.read(0, usize::MAX);
        assert_eq!(lines.len(), LOG_LINES_KEPT);
        assert_eq!(next, LOG_LINES_KEPT as u64 + 11);
        assert_eq!(lines.last().unwrap().text.len(), LOG_LINE_MAX);
    }
}

//! NDJSON framing: reading lines with a hard length limit (discarding the rest of an over-long
//! line, never the next one) and one writer that owns stdout.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// One framed input: a line, an over-long line that was skipped, or the end of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to and including its `\n`.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads `\n`-terminated lines of at most `max` bytes.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader that refuses lines longer than `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max, buf: Vec::new() }
    }

    /// The next frame. A final line without `\n` before EOF still counts as a line.
    pub async fn next(&mut self) -> std::io::Result<Frame> {
        self.buf.clear();
        let mut discarding = false;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(if discarding {
                    Frame::TooLong
                } else if self.buf.is_empty() {
                    Frame::Eof
                } else {
                    Frame::Line(trim_cr(std::mem::take(&mut self.buf)))
                });
            }
            let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if !discarding {
                if self.buf.len() + chunk.len() > self.max {
                    discarding = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            let used = done.unwrap_or(available.len());
            self.inner.consume(used);
            if done.is_some() {
                return Ok(if discarding {
                    Frame::TooLong
                } else {
                    Frame::Line(trim_cr(std::mem::take(&mut self.buf)))
                });
            }
        }
    }
}

fn trim_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Sends serialized messages to the writer task.
#[derive(Clone)]
pub struct Outgoing(mpsc::Sender<Vec<u8>>);

impl Outgoing {
    /// Queues one message; waits when the writer is behind (backpressure reaches the command).
    pub async fn send(&self, message: &serde_json::Value) {
        let mut line = serde_json::to_vec(message).expect("a serde_json::Value always serializes");
        line.push(b'\n');
        // The writer only goes away at exit; a message then has nobody to read it anyway.
        let _ = self.0.send(line).await;
    }
}

/// Starts the task that owns `out`: it writes whole lines and flushes whenever its queue is empty.
pub fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(mut out: W) -> (Outgoing, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let task = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if out.write_all(&line).await.is_err() {
                return; // stdout closed: the client is gone
            }
            while let Ok(more) = rx.try_recv() {
                if out.write_all(&more).await.is_err() {
                    return;
                }
            }
            if out.flush().await.is_err() {
                return;
            }
        }
        let _ = out.flush().await;
    });
    (Outgoing(tx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        loop {
            let f = r.next().await.unwrap();
            let end = f == Frame::Eof;
            out.push(f);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_on_newline_and_cr_is_dropped() {
        let got = frames(b"ab\r\ncd\n\nlast", 100).await;
        assert_eq!(
            got,
            [
                Frame::Line(b"ab".to_vec()),
                Frame::Line(b"cd".to_vec()),
                Frame::Line(vec![]),
                Frame::Line(b"last".to_vec()),
                Frame::Eof
            ]
        );
    }

    #[tokio::test]
    async fn an_over_long_line_is_skipped_and_the_next_one_survives() {
        let got = frames(b"0123456789abcdef\nok\n", 8).await;
        assert_eq!(got, [Frame::TooLong, Frame::Line(b"ok".to_vec()), Frame::Eof]);
        let got = frames(b"12345678\n123456789", 8).await;
        assert_eq!(got, [Frame::Line(b"12345678".to_vec()), Frame::TooLong, Frame::Eof]);
    }
}

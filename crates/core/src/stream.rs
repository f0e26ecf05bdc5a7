//! Bytes as streams between engines, the host and callers, so no layer holds a whole file, tree or
//! upload: a pipe that lets blocking code (tar packing, host files) feed an async reader, and the
//! reader users get for a file in a sandbox.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::{Error, Result};

/// A stream of bytes that ends with an error when its producer failed.
pub(crate) type ByteStream = Pin<Box<dyn AsyncRead + Send + 'static>>;

/// How much a pipe writer gathers before it hands a chunk on.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight in a pipe: at most `CHUNK * DEPTH` bytes are buffered.
const DEPTH: usize = 8;

/// Bytes already in memory as a stream.
pub(crate) fn from_bytes(data: Vec<u8>) -> ByteStream {
    Box::pin(io::Cursor::new(data))
}

/// Runs `produce` on the blocking pool, writing into a pipe whose reading end is returned. An
/// error of `produce` reaches the reader as an error (never as a clean, short end), and a reader
/// that is dropped makes the producer's writes fail, which ends it.
pub(crate) fn produce<F>(produce: F) -> ByteStream
where
    F: FnOnce(&mut PipeWriter) -> Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let mut w = PipeWriter { tx, buf: BytesMut::new(), done: false };
    tokio::task::spawn_blocking(move || match produce(&mut w) {
        Ok(()) => w.finish(),
        Err(e) => w.fail(e.into_io()),
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Box::pin(StreamReader::new(chunks.boxed()))
}

/// Runs `consume` on the blocking pool with `stream` as a blocking reader.
pub(crate) async fn consume<T, F>(stream: ByteStream, what: &str, consume: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T> + Send + 'static,
{
    let mut reader = SyncIoBridge::new(stream);
    tokio::task::spawn_blocking(move || consume(&mut reader))
        .await
        .map_err(|e| Error::io(what.to_string(), io::Error::other(e)))?
}

/// The writing end of [`produce`]'s pipe.
pub(crate) struct PipeWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
    done: bool,
}

impl PipeWriter {
    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        self.tx.blocking_send(item).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }

    fn finish(mut self) {
        if self.flush().is_ok() {
            self.done = true;
        }
    }

    fn fail(mut self, e: io::Error) {
        self.done = true;
        let _ = self.send(Err(e));
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.send(Ok(chunk))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        // A producer that panicked must not look like a short, complete stream.
        if !self.done {
            let _ = self.send(Err(io::Error::other("the producer of this stream stopped before the end")));
        }
    }
}

/// Reads exactly `len` bytes of `inner`: a source that ends early is an error, not a short file,
/// and one that grew is cut at `len` (what a tar header already promised).
pub(crate) struct ExactLen<R> {
    inner: R,
    left: u64,
}

impl<R: Read> ExactLen<R> {
    /// `len` bytes of `inner`.
    pub fn new(inner: R, len: u64) -> Self {
        ExactLen { inner, left: len }
    }
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file got shorter while it was read"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The contents of one file in a sandbox, read as they arrive: [`size`](Self::size) is known
/// before the first byte. Reading it yields exactly that many bytes or an I/O error (a sandbox
/// error inside, where the engine failed). From [`Sandbox::open_file`](crate::Sandbox::open_file).
pub struct FileReader {
    size: u64,
    inner: ByteStream,
    /// Whatever must live as long as the reader (a host copy the engine exported).
    _keep: Option<Box<dyn Send + Sync>>,
}

impl FileReader {
    /// A reader of `size` bytes from `inner`.
    pub(crate) fn new(size: u64, inner: ByteStream) -> Self {
        FileReader { size, inner, _keep: None }
    }

    /// The same reader, keeping `guard` alive until it is dropped.
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub(crate) fn keeping(mut self, guard: impl Send + Sync + 'static) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader").field("size", &self.size).finish_non_exhaustive()
    }
}

impl AsyncRead for FileReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_pipe_carries_the_bytes_and_the_producers_error() {
        let mut ok = produce(|w| {
            for i in 0..1000u32 {
                w.write_all(&i.to_le_bytes()).map_err(|e| Error::io("test", e))?;
            }
            Ok(())
        });
        let mut got = Vec::new();
        ok.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 4000);
        assert_eq!(&got[3996..], &999u32.to_le_bytes());

        let mut failed = produce(|w| {
            w.write_all(b"partial").map_err(|e| Error::io("test", e))?;
            Err(Error::InvalidArgument("the producer refused".into()))
        });
        let e = failed.read_to_end(&mut Vec::new()).await.unwrap_err();
        let e = Error::from_stream("reading", e);
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument, "the typed error comes through: {e}");
    }

    #[test]
    fn exact_len_refuses_a_short_source_and_cuts_a_long_one() {
        let mut out = Vec::new();
        assert!(ExactLen::new(&b"abc"[..], 5).read_to_end(&mut out).is_err());
        out.clear();
        ExactLen::new(&b"abcdef"[..], 4).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
    }
}

//! File operations through the agent: a tar extracted in the sandbox as it streams in, a file
//! streamed out (its size checked before the first byte and its length exactly that), stat,
//! delete and listing as one small request each. Paths were resolved and checked against the
//! restricted paths by the sandbox before they get here; nothing the agent says becomes a host path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dagger_sandbox_agent::{EntryKind as AgentKind, ErrorKind, Kind, Reply, Request, CHUNK};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use super::link::{Call, Incoming, Link};
use super::{said, QUICK};
use crate::backend::{check_file_size, check_list_len, DirEntry, EntryKind, LIST_MAX_ENTRIES};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::stream::{ByteStream, FileReader};

/// The error of a reply that failed a request about `path`.
fn failed(sandbox: &str, op: &str, what: &'static str, path: &SandboxPath, kind: ErrorKind, message: &str) -> Error {
    match kind {
        ErrorKind::NotFound => Error::not_found(sandbox, what, path.to_string()),
        // As the Engine API path and the local backend say it.
        ErrorKind::Loop => Error::invalid_path(path.to_string(), "too many levels of symbolic links"),
        ErrorKind::IsDir => Error::InvalidArgument(format!("sandbox {sandbox}: {path} is a directory, not a file")),
        ErrorKind::NotFile => Error::InvalidArgument(format!("sandbox {sandbox}: {path} is not a regular file")),
        ErrorKind::Conflict => Error::InvalidArgument(format!(
            "sandbox {sandbox}: a write would replace a directory with a file or a file with a directory: {}",
            said(message)
        )),
        _ => Error::engine(sandbox, op, said(message)),
    }
}

/// Extracts a tar rooted at `/`, sent as it is read; `timeout` bounds the whole upload.
pub(crate) async fn upload(link: &Arc<Link>, sandbox: &str, timeout: Duration, mut tar: ByteStream) -> Result<()> {
    let op = "writing files";
    let mut call = link.call(&Request::Untar {})?;
    let work = async {
        let feeder = call.feeder();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = tar
                .read(&mut buf)
                .await
                .map_err(|e| Error::from_stream(format!("sandbox {sandbox}: sending files"), e))?;
            if n == 0 {
                break;
            }
            tokio::select! {
                sent = feeder.send(op, &buf[..n]) => sent?,
                // The agent answered before the end: it failed (or is broken).
                early = call.next(op) => return finished(&call, sandbox, early?),
            }
        }
        call.send_eof();
        let reply = call.next(op).await?;
        finished(&call, sandbox, reply)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            link.fail(format!("an upload did not finish within {} ms", timeout.as_millis()));
            Err(link.lost(op))
        }
    }
}

/// The outcome of an upload from its terminal reply.
fn finished(call: &Call, sandbox: &str, reply: Incoming) -> Result<()> {
    match reply {
        Incoming::Reply(Reply::Done {}) => Ok(()),
        Incoming::Reply(Reply::Error { kind, message, .. }) => {
            Err(failed(sandbox, "writing files", "path", &SandboxPath::root(), kind, &message))
        }
        other => Err(call.link().unexpected("writing files", &other)),
    }
}

/// The regular file at `path` as a stream of exactly its size; `TOO_LARGE` over `limit`.
pub(crate) async fn read_file(link: &Arc<Link>, sandbox: &str, path: &SandboxPath, limit: u64) -> Result<FileReader> {
    let op = "reading a file";
    let mut call = link.call(&Request::Read { path: path.to_string(), limit })?;
    let size = match call.next_within(op, QUICK).await? {
        Incoming::Reply(Reply::Size { size }) => size,
        Incoming::Reply(Reply::Error { kind: ErrorKind::TooLarge, size, message }) => {
            check_file_size(sandbox, path, size.unwrap_or(u64::MAX), limit)?;
            return Err(Error::engine(sandbox, op, said(&message)));
        }
        Incoming::Reply(Reply::Error { kind, message, .. }) => {
            return Err(failed(sandbox, op, "file", path, kind, &message))
        }
        other => return Err(call.link().unexpected(op, &other)),
    };
    check_file_size(sandbox, path, size, limit)?;
    let sandbox = sandbox.to_string();
    let shown = path.to_string();
    // (call, bytes received, ended)
    let chunks = futures_util::stream::unfold((call, 0u64, false), move |(mut call, got, ended)| {
        let (sandbox, shown) = (sandbox.clone(), shown.clone());
        async move {
            if ended {
                return None;
            }
            let bad = |why: String| Error::engine(&sandbox, "reading a file", format!("{shown}: {why}")).into_io();
            let item: std::io::Result<Bytes> = match call.next_within("reading a file", QUICK).await {
                Ok(Incoming::Data(Kind::Data, data)) if got + data.len() as u64 <= size => {
                    let got = got + data.len() as u64;
                    return Some((Ok(data), (call, got, false)));
                }
                Ok(Incoming::Data(..)) => Err(bad(format!("the agent sent more than its {size} bytes"))),
                Ok(Incoming::Reply(Reply::Done {})) if got == size => return None,
                Ok(Incoming::Reply(Reply::Done {})) => Err(bad(format!("it ended after {got} of {size} bytes"))),
                Ok(Incoming::Reply(Reply::Error { message, .. })) => Err(bad(said(&message))),
                Ok(other) => Err(call.link().unexpected("reading a file", &other).into_io()),
                Err(e) => Err(e.into_io()),
            };
            Some((item, (call, got, true)))
        }
    });
    let reader: ByteStream = Box::pin(StreamReader::new(chunks.boxed()));
    Ok(FileReader::new(size, reader))
}

/// What is at `path`, not following a final symlink.
pub(crate) async fn stat(link: &Arc<Link>, sandbox: &str, path: &SandboxPath) -> Result<Option<EntryKind>> {
    let op = "checking a path";
    let mut call = link.call(&Request::Stat { path: path.to_string() })?;
    match call.next_within(op, QUICK).await? {
        Incoming::Reply(Reply::Stat { entry }) => Ok(entry.map(|e| kind(e.kind))),
        // A path that cannot be looked at (a link loop on the way, no permission) is not "absent".
        Incoming::Reply(Reply::Error { kind, message, .. }) => Err(failed(sandbox, op, "path", path, kind, &message)),
        other => Err(call.link().unexpected(op, &other)),
    }
}

fn kind(k: AgentKind) -> EntryKind {
    match k {
        AgentKind::File => EntryKind::File,
        AgentKind::Dir => EntryKind::Dir,
        AgentKind::Symlink => EntryKind::Symlink,
        AgentKind::Other => EntryKind::Other,
    }
}

/// Removes `path` recursively, within `timeout`.
pub(crate) async fn remove(link: &Arc<Link>, sandbox: &str, timeout: Duration, path: &SandboxPath) -> Result<()> {
    let op = "deleting a path";
    let mut call = link.call(&Request::Remove { path: path.to_string() })?;
    match call.next_within(op, timeout).await? {
        Incoming::Reply(Reply::Done {}) => Ok(()),
        Incoming::Reply(Reply::Error { kind, message, .. }) => Err(failed(sandbox, op, "file", path, kind, &message)),
        other => Err(call.link().unexpected(op, &other)),
    }
}

/// The entries of the directory at `path`, sorted by name; `TOO_LARGE` past [`LIST_MAX_ENTRIES`].
pub(crate) async fn list_dir(link: &Arc<Link>, sandbox: &str, path: &SandboxPath) -> Result<Vec<DirEntry>> {
    let op = "listing a directory";
    let max = LIST_MAX_ENTRIES + 1;
    let mut call = link.call(&Request::List { path: path.to_string(), max })?;
    let mut entries = Vec::new();
    loop {
        match call.next_within(op, QUICK).await? {
            Incoming::Data(Kind::Data, data) => {
                let batch: Vec<dagger_sandbox_agent::Entry> = serde_json::from_slice(&data).map_err(|e| {
                    call.link().fail(format!("a malformed listing: {e}"));
                    call.link().lost(op)
                })?;
                if entries.len() + batch.len() > max {
                    return Err(call.link().unexpected(op, &Incoming::Data(Kind::Data, data)));
                }
                entries.extend(batch.into_iter().map(|e| DirEntry { name: e.name, kind: kind(e.kind), size: e.size }));
            }
            Incoming::Reply(Reply::Done {}) => break,
            Incoming::Reply(Reply::Error { kind, message, .. }) => {
                return Err(failed(sandbox, op, "directory", path, kind, &message))
            }
            other => return Err(call.link().unexpected(op, &other)),
        }
    }
    check_list_len(sandbox, path, entries.len())?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

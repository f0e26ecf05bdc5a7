//! The protocol between dagger-sandbox (the host) and its in-sandbox agent: one byte stream
//! carries length-prefixed frames, each naming the request it belongs to, so many requests are
//! in flight at once (multiplexed). Control messages are JSON; file bytes and output are raw.
//!
//! Transport: the agent's stdin and stdout, or, when the host offers one in
//! `DAGGER_SANDBOX_AGENT_SOCKET`, a Unix socket the host listens on (the agent's stdin then only
//! tells it, by closing, that the host is gone).
//!
//! Frame: `len: u32 BE` (bytes after this field) | `id: u32 BE` | `kind: u8` | payload.
//! The host opens with [`Kind::Hello`] (`id` 0) and the agent answers with its own hello; a
//! version the agent does not speak ends the connection. Every request then gets exactly one
//! terminal reply ([`Reply::Done`], [`Reply::Error`] or [`Reply::Exit`]).
//!
//! Flow control: neither side sends more than [`WINDOW`] data frames of one request that the
//! other has not acknowledged with [`Kind::Ack`], so each request holds at most
//! `WINDOW * MAX_PAYLOAD` bytes on the receiving side; a peer that sends more is broken.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest payload of one frame; a longer frame is a protocol error.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Bytes of file data or output a sender puts in one data frame.
pub const CHUNK: usize = 64 * 1024;
/// Data frames of one request a sender may have unacknowledged.
pub const WINDOW: u32 = 8;
/// Bytes before the payload: `len`, `id`, `kind`.
pub const HEADER: usize = 9;
/// Where the Docker backend mounts the agent inside a sandbox (read-only).
pub const AGENT_PATH: &str = "/.dagger-sandbox/agent";

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// JSON [`Hello`], both ways, once, first.
    Hello = 1,
    /// JSON [`Request`], host to agent: starts request `id`.
    Request = 2,
    /// JSON [`Reply`], agent to host.
    Reply = 3,
    /// Raw bytes: stdin or a tar (host to agent), file contents (agent to host).
    Data = 4,
    /// Raw bytes of a command's standard output.
    Stdout = 5,
    /// Raw bytes of a command's standard error.
    Stderr = 6,
    /// The end of one stream of the request; payload: one byte, the [`Kind`] that ended.
    Eof = 7,
    /// Acknowledges data frames; payload: `u32 BE`, how many.
    Ack = 8,
    /// Host to agent: stop the request (kill a command's process group, abandon a read).
    Cancel = 9,
}

impl Kind {
    /// The kind of a frame's kind byte, or `None` for a byte no version defines.
    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Request,
            3 => Kind::Reply,
            4 => Kind::Data,
            5 => Kind::Stdout,
            6 => Kind::Stderr,
            7 => Kind::Eof,
            8 => Kind::Ack,
            9 => Kind::Cancel,
            _ => return None,
        })
    }
}

/// The handshake each side sends first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version spoken (the host sends its own; the agent answers with the one it
    /// will speak, which must be the host's).
    pub version: u32,
    /// The agent's process id in the sandbox (0 from the host).
    #[serde(default)]
    pub pid: u32,
    /// The user id the agent runs as (0 from the host).
    #[serde(default)]
    pub uid: u32,
    /// On the socket transport, the token the host gave the agent (in its environment): anyone in
    /// the sandbox can reach the socket, only the agent knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// One operation the host asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Runs `argv` in its own process group; with `stdin`, [`Kind::Data`] frames then an
    /// [`Kind::Eof`] feed it. Replies: [`Kind::Stdout`]/[`Kind::Stderr`] frames, an `Eof` for
    /// each, then [`Reply::Exit`].
    Exec {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Variables set on top of the agent's own environment (the container's).
        env: Vec<(String, String)>,
        /// The working directory.
        cwd: String,
        /// Whether stdin frames follow (otherwise stdin is empty).
        stdin: bool,
        /// A `NAME=value` entry of `env` that marks the command's processes: a kill also ends
        /// processes that left its process group but still carry it.
        #[serde(default)]
        marker: String,
    },
    /// Streams a regular file (symlinks followed): [`Reply::Size`], `Data` frames, [`Reply::Done`].
    Read {
        /// The absolute path.
        path: String,
        /// Larger files are refused with [`ErrorKind::TooLarge`] before any byte is sent.
        limit: u64,
    },
    /// What is at a path, not following a final symlink: [`Reply::Stat`].
    Stat {
        /// The absolute path.
        path: String,
    },
    /// Removes a path recursively: [`Reply::Done`].
    Remove {
        /// The absolute path.
        path: String,
    },
    /// Lists a directory: `Data` frames each holding a JSON array of [`Entry`], then [`Reply::Done`].
    List {
        /// The absolute path.
        path: String,
        /// The agent stops after this many entries (the host refuses a longer listing).
        max: usize,
    },
    /// Extracts the tar carried by the following `Data` frames at `/`: [`Reply::Done`].
    Untar {},
}

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A fifo, socket or device.
    Other,
}

/// One directory entry, or what a stat found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name within its directory (empty for a stat).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
}

/// Why a request failed, as far as the host needs to tell cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The path (or the working directory) does not exist.
    NotFound,
    /// A directory where a file was wanted.
    IsDir,
    /// Not a regular file.
    NotFile,
    /// Larger than the request's limit.
    TooLarge,
    /// A write would replace a directory with a file or the other way round.
    Conflict,
    /// Too many levels of symbolic links on the path (a link loop): the path, not the engine,
    /// is at fault. Since protocol 2.
    Loop,
    /// The request is malformed or unknown to this agent.
    BadRequest,
    /// Anything else (the message says what).
    Other,
}

/// One reply of the agent to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    /// The command started with this pid (also its process group).
    Started {
        /// Its pid in the sandbox.
        pid: u32,
    },
    /// The command ended (terminal): its exit code, 128 + signal when killed.
    Exit {
        /// The exit code.
        code: i64,
    },
    /// The size of the file whose bytes follow.
    Size {
        /// Bytes that follow.
        size: u64,
    },
    /// What a stat found, or `None` for nothing there (terminal).
    Stat {
        /// The entry.
        entry: Option<Entry>,
    },
    /// The request succeeded (terminal).
    Done {},
    /// The request failed (terminal).
    Error {
        /// The class of failure.
        kind: ErrorKind,
        /// What failed, for people.
        message: String,
        /// The size found, for [`ErrorKind::TooLarge`].
        #[serde(default)]
        size: Option<u64>,
    },
}

impl Reply {
    /// Whether this reply ends its request.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Reply::Exit { .. } | Reply::Stat { .. } | Reply::Done {} | Reply::Error { .. })
    }
}

/// Encodes one frame.
pub fn encode(id: u32, kind: Kind, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    out
}

/// Encodes a frame whose payload is `value` as JSON.
pub fn encode_json<T: Serialize>(id: u32, kind: Kind, value: &T) -> Vec<u8> {
    let payload = serde_json::to_vec(value).expect("protocol messages serialize");
    encode(id, kind, &payload)
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The request it belongs to (0 for the hello).
    pub id: u32,
    /// What it carries.
    pub kind: Kind,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is shorter than a header or longer than [`MAX_PAYLOAD`] allows.
    BadLength(u32),
    /// The kind byte is not one this version defines.
    BadKind(u8),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength(n) => write!(f, "a frame length of {n} bytes (at most {} allowed)", MAX_PAYLOAD + 5),
            FrameError::BadKind(k) => write!(f, "an unknown frame kind {k}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Takes one frame off the front of `buf` when a whole one is there; `Ok(None)` when more bytes
/// are needed. Never needs more than `HEADER + MAX_PAYLOAD` bytes buffered.
pub fn decode(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 5 || len as usize > MAX_PAYLOAD + 5 {
        return Err(FrameError::BadLength(len));
    }
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = Kind::from_byte(buf[8]).ok_or(FrameError::BadKind(buf[8]))?;
    let total = 4 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let id = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = buf[HEADER..total].to_vec();
    buf.drain(..total);
    Ok(Some(Frame { id, kind, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut wire = encode(7, Kind::Stdout, b"\x00\xffbytes");
        wire.extend(encode_json(9, Kind::Request, &Request::Stat { path: "/a b".into() }));
        let hello = Hello { version: 1, pid: 0, uid: 0, token: None };
        assert_eq!(serde_json::to_string(&hello).unwrap(), r#"{"version":1,"pid":0,"uid":0}"#);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in wire {
            buf.push(b);
            while let Some(f) = decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got[0], Frame { id: 7, kind: Kind::Stdout, payload: b"\x00\xffbytes".to_vec() });
        let req: Request = serde_json::from_slice(&got[1].payload).unwrap();
        assert_eq!(req, Request::Stat { path: "/a b".into() });
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversized_or_unknown_frame_is_refused_before_it_is_buffered() {
        let mut huge = ((MAX_PAYLOAD + 6) as u32).to_be_bytes().to_vec();
        assert_eq!(decode(&mut huge), Err(FrameError::BadLength(MAX_PAYLOAD as u32 + 6)));
        let mut short = 2u32.to_be_bytes().to_vec();
        assert_eq!(decode(&mut short), Err(FrameError::BadLength(2)));
        let mut bad = encode(1, Kind::Ack, &[]);
        bad[8] = 200;
        assert_eq!(decode(&mut bad), Err(FrameError::BadKind(200)));
    }
}

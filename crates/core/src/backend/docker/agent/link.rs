//! The host's end of one agent connection: a long-lived `docker exec` of the agent whose attached
//! stdin and stdout carry the frames of `dagger_sandbox_agent`. The agent runs inside the sandbox,
//! so everything it sends is checked: frames are bounded, each request may hold only a window of
//! unconsumed frames, every wait has a deadline, and anything malformed ends the connection, which
//! fails the requests in flight with `ENGINE_ERROR` and sends later ones to the Engine API path.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use bytes::Bytes;
use dagger_sandbox_agent::{decode, encode, encode_json, Hello, Kind, Reply, Request, PROTOCOL_VERSION, WINDOW};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;

use crate::backend::docker::describe;
use crate::error::{Error, Result};

mod call;
pub(crate) use call::{Call, Canceller};

/// How long the agent may take to start and answer the hello.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames of one request the host keeps before the consumer takes them: the agent's data window
/// for stdout and stderr, plus the few control replies one request can get. More is a violation.
const QUEUE: usize = 2 * WINDOW as usize + 8;
/// Where the socket directory is mounted in a sandbox, and the socket's name in it.
pub(crate) const SOCKET_DIR: &str = "/.dagger-sandbox/run";
const SOCKET_NAME: &str = "agent.sock";
/// The agent's variables: the socket to connect to, and the token that proves it is the agent.
const SOCKET_VAR: &str = "DAGGER_SANDBOX_AGENT_SOCKET";
const TOKEN_VAR: &str = "DAGGER_SANDBOX_AGENT_TOKEN";

type Reader = Pin<Box<dyn AsyncRead + Send>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Most bytes of the agent's stderr logged per line.
const LOG_MAX: usize = 1024;

/// Something the agent sent for one request.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A JSON reply.
    Reply(Reply),
    /// Raw bytes of the given kind (file data, stdout, stderr).
    Data(Kind, Bytes),
    /// The end of the stream of that kind.
    Eof(Kind),
}

/// What the reader knows of one request in flight.
struct Slot {
    tx: mpsc::Sender<Incoming>,
    /// Credit for the host's own data frames of this request (stdin, a tar).
    credit: Arc<Credit>,
}

/// The host's send window for one request.
pub(crate) struct Credit {
    permits: Semaphore,
    /// Frames sent and not yet acknowledged: an agent cannot acknowledge more than these.
    outstanding: AtomicU32,
    /// Cancelled once the request is over: a sender waiting for room stops waiting.
    over: CancellationToken,
}

/// One connection to a sandbox's agent.
pub(crate) struct Link {
    sandbox: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    slots: Mutex<HashMap<u32, Slot>>,
    next_id: AtomicU32,
    dead: CancellationToken,
    why: Mutex<Option<String>>,
    /// The agent's pid in the sandbox.
    pub pid: u32,
    /// The user the agent (and so every command it runs) is.
    pub uid: u32,
}

impl Link {
    /// Starts the agent at `path` in `container` and shakes hands, within [`HELLO_TIMEOUT`].
    /// With `socket_dir` (a host directory mounted at [`SOCKET_DIR`] in the sandbox) the agent is
    /// offered a Unix socket there, which skips the engine's copying of the exec's stdio; an agent
    /// that answers on its stdout instead is spoken to there.
    pub(crate) async fn start(
        docker: &Docker,
        container: &str,
        sandbox: &str,
        path: &str,
        socket_dir: Option<&Path>,
    ) -> Result<Arc<Link>> {
        let started = Self::start_unbounded(docker, container, sandbox, path, socket_dir);
        match tokio::time::timeout(HELLO_TIMEOUT, started).await {
            Ok(r) => r,
            Err(_) => Err(Error::engine(
                sandbox,
                "starting the agent",
                format!("no hello within {} s", HELLO_TIMEOUT.as_secs()),
            )),
        }
    }

    async fn start_unbounded(
        docker: &Docker,
        container: &str,
        sandbox: &str,
        path: &str,
        socket_dir: Option<&Path>,
    ) -> Result<Arc<Link>> {
        let fail = |op: &str, e: &dyn std::fmt::Display| Error::engine(sandbox, op, e);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let socket = match socket_dir {
            Some(dir) => Some(listen(dir).map_err(|e| fail("opening the agent's socket", &e))?),
            None => None,
        };
        let mut env = vec![format!("{TOKEN_VAR}={token}")];
        if socket.is_some() {
            env.push(format!("{SOCKET_VAR}={SOCKET_DIR}/{SOCKET_NAME}"));
        }
        let config = ExecConfig {
            cmd: Some(vec![path.to_string()]),
            env: Some(env),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            working_dir: Some("/".into()),
            ..Default::default()
        };
        let exec =
            docker.create_exec(container, config).await.map_err(|e| fail("starting the agent", &describe(&e)))?;
        let opts = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let started =
            docker.start_exec(&exec.id, Some(opts)).await.map_err(|e| fail("starting the agent", &describe(&e)))?;
        let StartExecResults::Attached { output, mut input } = started else {
            return Err(fail("starting the agent", &"the engine detached an attached exec"));
        };
        let hello = encode_json(0, Kind::Hello, &Hello { version: PROTOCOL_VERSION, pid: 0, uid: 0, token: None });
        input.write_all(&hello).await.map_err(|e| fail("greeting the agent", &e))?;
        input.flush().await.map_err(|e| fail("greeting the agent", &e))?;
        // The exec's output: its stdout carries frames on the stdio transport; its end is the
        // agent's end on both.
        let (stdout_tx, mut stdout_rx) = mpsc::channel::<Bytes>(4);
        let exited = CancellationToken::new();
        tokio::spawn(pump_output(output, stdout_tx, exited.clone(), sandbox.to_string()));
        let stdio = |first: Option<Bytes>, rx: mpsc::Receiver<Bytes>| -> Reader {
            let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
            let all = futures_util::stream::iter(first).chain(rest).map(Ok::<_, std::io::Error>);
            Box::pin(StreamReader::new(all.boxed()))
        };
        let (mut reader, writer, keep): (Reader, Writer, Option<Writer>) = match socket {
            Some((listener, at)) => tokio::select! {
                accepted = listener.accept() => {
                    let _ = std::fs::remove_file(&at); // nobody else is let in
                    let (stream, _) = accepted.map_err(|e| fail("accepting the agent", &e))?;
                    let (r, mut w) = stream.into_split();
                    w.write_all(&hello).await.map_err(|e| fail("greeting the agent", &e))?;
                    (Box::pin(r), Box::pin(w), Some(Box::pin(input)))
                }
                first = stdout_rx.recv() => {
                    let Some(first) = first else { return Err(fail("greeting the agent", &"it exited before saying hello")) };
                    (stdio(Some(first), stdout_rx), Box::pin(input), None)
                }
            },
            None => (stdio(None, stdout_rx), Box::pin(input), None),
        };
        // The hello, read before anything is shared: whatever else comes first is a failure.
        let mut buf = Vec::new();
        let hello = loop {
            match decode(&mut buf) {
                Ok(Some(f)) if f.kind == Kind::Hello => break f,
                Ok(Some(f)) => return Err(fail("greeting the agent", &format!("a {:?} frame before hello", f.kind))),
                Err(e) => return Err(fail("greeting the agent", &format!("it sent {e}"))),
                Ok(None) => {}
            }
            let mut chunk = [0u8; 4096];
            match reader.read(&mut chunk).await {
                Ok(0) => return Err(fail("greeting the agent", &"it exited before saying hello")),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(fail("greeting the agent", &e)),
            }
        };
        let hello: Hello = serde_json::from_slice(&hello.payload)
            .map_err(|e| fail("greeting the agent", &format!("a malformed hello: {e}")))?;
        if hello.version != PROTOCOL_VERSION {
            return Err(fail(
                "greeting the agent",
                &format!("it speaks protocol {}, this host {PROTOCOL_VERSION}", hello.version),
            ));
        }
        if keep.is_some() && hello.token.as_deref() != Some(token.as_str()) {
            return Err(fail("greeting the agent", &"the socket's peer did not know the agent's token"));
        }
        Ok(Self::run(sandbox, hello, reader, writer, keep, buf, exited))
    }

    /// Shares a connection that said hello: a task writes the frames of every caller, another
    /// reads and dispatches the agent's, and the agent's exit ends it.
    fn run(
        sandbox: &str,
        hello: Hello,
        mut reader: Reader,
        mut writer: Writer,
        keep: Option<Writer>,
        mut buf: Vec<u8>,
        exited: CancellationToken,
    ) -> Arc<Link> {
        let (out, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();
        let link = Arc::new(Link {
            sandbox: sandbox.to_string(),
            out,
            slots: Mutex::default(),
            next_id: AtomicU32::new(1),
            dead: CancellationToken::new(),
            why: Mutex::default(),
            pid: hello.pid,
            uid: hello.uid,
        });
        let writes = Arc::downgrade(&link);
        let dead = link.dead.clone();
        tokio::spawn(async move {
            // The exec's stdin on the socket transport: held open, its close tells the agent to stop.
            let mut keep = keep;
            loop {
                let frame = tokio::select! {
                    f = frames.recv() => f,
                    _ = dead.cancelled() => None,
                };
                let Some(frame) = frame else { break };
                if let Err(e) = async {
                    writer.write_all(&frame).await?;
                    writer.flush().await
                }
                .await
                {
                    if let Some(link) = writes.upgrade() {
                        link.fail(format!("writing to it failed: {e}"));
                    }
                    break;
                }
            }
            // Closing its stdin tells a well-behaved agent to stop (and kill what it runs).
            let _ = writer.shutdown().await;
            if let Some(k) = keep.as_mut() {
                let _ = k.shutdown().await;
            }
        });
        let reads = Arc::downgrade(&link);
        let dead = link.dead.clone();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            let why = loop {
                let n = tokio::select! {
                    n = reader.read(&mut chunk) => n,
                    _ = dead.cancelled() => break None,
                    _ = exited.cancelled() => break Some("it exited".to_string()),
                };
                match n {
                    Ok(0) => break Some("it exited".to_string()),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(link) = reads.upgrade() else { break None };
                        if let Err(why) = link.take_frames(&mut buf) {
                            break Some(why);
                        }
                    }
                    Err(e) => break Some(format!("its stream failed: {e}")),
                }
            };
            if let (Some(why), Some(link)) = (why, reads.upgrade()) {
                link.fail(why);
            }
        });
        link
    }

    /// Dispatches every whole frame in `buf`; a violation is returned and ends the connection.
    fn take_frames(&self, buf: &mut Vec<u8>) -> std::result::Result<(), String> {
        loop {
            let frame = match decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("it sent {e}")),
            };
            let incoming = match frame.kind {
                Kind::Reply => match serde_json::from_slice::<Reply>(&frame.payload) {
                    Ok(r) => Incoming::Reply(r),
                    Err(e) => return Err(format!("it sent a malformed reply: {e}")),
                },
                Kind::Data | Kind::Stdout | Kind::Stderr => Incoming::Data(frame.kind, Bytes::from(frame.payload)),
                Kind::Eof => match frame.payload.first().and_then(|b| Kind::from_byte(*b)) {
                    Some(k) => Incoming::Eof(k),
                    None => return Err("it sent an end of an unknown stream".into()),
                },
                Kind::Ack => {
                    let n = <[u8; 4]>::try_from(frame.payload.as_slice())
                        .map(u32::from_be_bytes)
                        .map_err(|_| "it sent a malformed acknowledgement".to_string())?;
                    let credit = self.lock_slots().get(&frame.id).map(|s| s.credit.clone());
                    if let Some(c) = credit {
                        c.release(n);
                    }
                    continue;
                }
                k @ (Kind::Hello | Kind::Request | Kind::Cancel) => return Err(format!("it sent a {k:?} frame")),
            };
            let slots = self.lock_slots();
            // A request the host stopped waiting for: what still comes for it is dropped.
            let Some(slot) = slots.get(&frame.id) else { continue };
            if slot.tx.try_send(incoming).is_err() {
                // Full: it ignored the window. Closed: the caller is leaving; ignore.
                if !slot.tx.is_closed() {
                    return Err(format!("it overran the window of request {}", frame.id));
                }
            }
        }
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the connection: every request in flight fails, later ones take the Engine API path.
    pub(crate) fn fail(&self, why: String) {
        {
            let mut slot = self.why.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                tracing::warn!(sandbox = %self.sandbox, "the in-sandbox agent stopped ({why}); using the Engine API");
                *slot = Some(why);
            }
        }
        self.end();
    }

    /// Ends the connection because the sandbox closes: its agent is expected to go, unremarked.
    pub(crate) fn close(&self) {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| "the sandbox closed".into());
        self.end();
    }

    fn end(&self) {
        self.dead.cancel();
        for (_, slot) in self.lock_slots().drain() {
            slot.credit.over.cancel();
        }
    }

    /// The `ENGINE_ERROR` of a frame that has no place where it came; the connection ends.
    pub(crate) fn unexpected(&self, op: &str, got: &Incoming) -> Error {
        let what = match got {
            Incoming::Reply(r) => format!("{r:?}"),
            Incoming::Data(k, b) => format!("{k:?} of {} bytes", b.len()),
            Incoming::Eof(k) => format!("the end of {k:?}"),
        };
        self.fail(format!("an unexpected {} while {op}", super::said(&what)));
        self.lost(op)
    }

    /// Whether the connection still works.
    pub(crate) fn alive(&self) -> bool {
        !self.dead.is_cancelled()
    }

    /// The `ENGINE_ERROR` of a request cut off because the connection ended.
    pub(crate) fn lost(&self, op: &str) -> Error {
        let why = self.why.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_else(|| "it stopped".into());
        Error::engine(&self.sandbox, op, format!("the in-sandbox agent failed: {why}"))
    }

    /// Sends `request` and returns the call that receives its replies.
    pub(crate) fn call(self: &Arc<Self>, request: &Request) -> Result<Call> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        let credit = Arc::new(Credit {
            permits: Semaphore::new(WINDOW as usize),
            outstanding: AtomicU32::new(0),
            over: CancellationToken::new(),
        });
        {
            let mut slots = self.lock_slots();
            if !self.alive() {
                return Err(self.lost("sending a request"));
            }
            slots.insert(id, Slot { tx, credit: credit.clone() });
        }
        self.send(encode_json(id, Kind::Request, request));
        Ok(Call { link: self.clone(), id, rx, credit, finished: false })
    }

    fn send(&self, frame: Vec<u8>) {
        let _ = self.out.send(frame);
    }

    fn forget(&self, id: u32) {
        if let Some(slot) = self.lock_slots().remove(&id) {
            slot.credit.over.cancel();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.dead.cancel();
    }
}

impl Credit {
    fn release(&self, n: u32) {
        // An agent acknowledging frames never sent gains nothing.
        let mut granted = 0;
        let _ = self.outstanding.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
            granted = n.min(o);
            Some(o - granted)
        });
        self.permits.add_permits(granted as usize);
    }
}

/// Binds the host's end of the socket transport in `dir` (mounted in the sandbox at
/// [`SOCKET_DIR`]); anyone in the sandbox may connect, so the agent proves itself with its token.
fn listen(dir: &Path) -> std::io::Result<(UnixListener, PathBuf)> {
    let at = dir.join(SOCKET_NAME);
    let _ = std::fs::remove_file(&at);
    let listener = UnixListener::bind(&at)?;
    // The agent may run as any user of the image.
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o666))?;
    Ok((listener, at))
}

/// Forwards the agent exec's stdout to `stdout` and logs its stderr; cancels `exited` at its end.
async fn pump_output(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    stdout: mpsc::Sender<Bytes>,
    exited: CancellationToken,
    sandbox: String,
) {
    while let Some(item) = output.next().await {
        match item {
            // A receiver gone (the socket transport) is ignored: output is only watched for its end.
            Ok(LogOutput::StdOut { message }) => drop(stdout.send(message).await),
            Ok(LogOutput::StdErr { message }) => log_stderr(&sandbox, &message),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(sandbox, "the agent's exec stream failed: {}", describe(&e));
                break;
            }
        }
    }
    exited.cancel();
}

/// Logs what the agent wrote to its stderr (its own diagnostics), cut short.
fn log_stderr(sandbox: &str, message: &[u8]) {
    let text = String::from_utf8_lossy(&message[..message.len().min(LOG_MAX)]);
    tracing::debug!(sandbox, "agent: {}", text.trim_end());
}

//! The in-sandbox agent: speaks the protocol of `dagger_sandbox_agent` on its stdin and stdout
//! (one long-lived `docker exec`), runs commands in process groups of their own, and reads and
//! writes files, many requests at once. Logs go to stderr. It exits when its stdin closes, after
//! killing the commands it still runs.
//!
//! It is a child subreaper: a process that leaves its command's tree (`setsid cmd &` from a
//! subshell) is reparented to the agent, not to the container's init, so a kill can still find it
//! (see [`kill_tree`]), and the agent reaps it when it ends.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, ErrorKind as IoKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use dagger_sandbox_agent::{
    decode, encode, encode_json, Entry, EntryKind, ErrorKind, Frame, Hello, Kind, Reply, Request, CHUNK,
    PROTOCOL_VERSION, WINDOW,
};

mod procs;

use procs::{kill_tree, reap_orphans};

/// Entries of a listing sent in one frame: at most about 1.6 KB of JSON each (a 255-byte name of
/// escaped bytes), so a batch stays well inside `MAX_PAYLOAD`.
const LIST_BATCH: usize = 100;

/// Why a request failed for want of a thread.
const NO_THREAD: &str = "the agent could not start a thread: the sandbox's process limit (pidsLimit) is reached";

/// Starts a thread; `false` when the sandbox's process limit (or memory) refuses one, which must
/// fail one request, not stop the agent.
fn spawn(f: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new().stack_size(512 * 1024).spawn(f).is_ok()
}

/// Kills a command whose output or input cannot be served and reports why.
fn abandon(agent: &Agent, req: &Req, child: &mut std::process::Child, pid: i32) -> Reply {
    kill_tree(agent, req);
    let _ = child.wait();
    agent.children.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
    error(ErrorKind::Other, NO_THREAD)
}

/// How long a command's output may stay open after it exited (held by a background process).
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What the agent shares between its threads.
struct Agent {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    requests: Mutex<HashMap<u32, Arc<Req>>>,
    /// The commands it started and has not waited for: the reaper leaves these to their owners.
    /// Held while a command is spawned, so the reaper never takes a child before it is listed.
    children: Mutex<HashSet<i32>>,
    /// Commands started so far (a sequence number each) and running now, to judge orphans.
    started: AtomicU64,
    live: AtomicUsize,
}

/// One request in flight.
#[derive(Default)]
struct Req {
    /// Data frames sent and not yet acknowledged.
    in_flight: Mutex<u32>,
    credit: Condvar,
    cancelled: AtomicBool,
    /// Where the host's data frames for this request go (stdin, a tar).
    input: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// The command's process group, once started.
    pgid: AtomicI32,
    /// The marker its processes carry.
    marker: Mutex<String>,
    /// Its sequence number among commands, and whether another ran when it started.
    seq: AtomicU64,
    shared: AtomicBool,
}

impl Agent {
    fn send(&self, frame: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.write_all(frame).and_then(|_| out.flush()).is_err() {
            // The host is gone: nothing left to serve.
            std::process::exit(0);
        }
    }

    fn reply(&self, id: u32, reply: &Reply) {
        self.send(&encode_json(id, Kind::Reply, reply));
    }

    /// Sends a data frame once the window allows; `false` when the request was cancelled.
    fn send_data(&self, id: u32, req: &Req, kind: Kind, data: &[u8]) -> bool {
        let mut n = req.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= WINDOW && !req.cancelled.load(Ordering::SeqCst) {
            n = req.credit.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        if req.cancelled.load(Ordering::SeqCst) {
            return false;
        }
        *n += 1;
        drop(n);
        self.send(&encode(id, kind, data));
        true
    }

    fn finish(&self, id: u32, reply: &Reply) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.reply(id, reply);
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error { kind, message: message.into(), size: None }
}

/// The reply for an I/O error on `what`.
fn io_error(what: &str, e: &io::Error) -> Reply {
    let kind = match e.kind() {
        _ if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => ErrorKind::Loop,
        IoKind::NotFound | IoKind::NotADirectory => ErrorKind::NotFound,
        IoKind::IsADirectory | IoKind::AlreadyExists | IoKind::DirectoryNotEmpty => ErrorKind::Conflict,
        _ => ErrorKind::Other,
    };
    error(kind, format!("{what}: {e}"))
}

/// The stream the protocol runs on: the socket the host offers, else stdin and stdout.
fn transport(socket: Option<std::ffi::OsString>) -> (Box<dyn Read + Send>, Box<dyn Write + Send>) {
    if let Some(path) = socket {
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(s) => match s.try_clone() {
                Ok(w) => {
                    // Stdin stays the host's line to us: its end means the host is gone.
                    std::thread::spawn(|| {
                        let _ = io::copy(&mut io::stdin(), &mut io::sink());
                        std::process::exit(0);
                    });
                    return (Box::new(s), Box::new(w));
                }
                Err(e) => eprintln!("dagger-sandbox-agent: the socket: {e}; using stdio"),
            },
            Err(e) => eprintln!("dagger-sandbox-agent: cannot connect to {path:?}: {e}; using stdio"),
        }
    }
    (Box::new(io::stdin()), Box::new(io::stdout()))
}

fn main() {
    // Kept from the commands it runs: the token proves the agent to the host.
    let token = std::env::var("DAGGER_SANDBOX_AGENT_TOKEN").ok();
    let socket = std::env::var_os("DAGGER_SANDBOX_AGENT_SOCKET");
    std::env::remove_var("DAGGER_SANDBOX_AGENT_TOKEN");
    std::env::remove_var("DAGGER_SANDBOX_AGENT_SOCKET");
    let (mut input, output) = transport(socket);
    let agent = Arc::new(Agent {
        out: Mutex::new(BufWriter::new(output)),
        requests: Mutex::default(),
        children: Mutex::default(),
        started: AtomicU64::new(0),
        live: AtomicUsize::new(0),
    });
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("dagger-sandbox-agent: cannot be a subreaper ({e}); escaped processes go to init");
    }
    let reaper = agent.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        reap_orphans(&reaper);
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut greeted = false;
    loop {
        let frame = match decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => match input.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(e) => {
                eprintln!("dagger-sandbox-agent: {e}; stopping");
                break;
            }
        };
        if !greeted {
            if frame.kind != Kind::Hello {
                eprintln!("dagger-sandbox-agent: the host did not start with a hello; stopping");
                break;
            }
            let hello = Hello {
                version: PROTOCOL_VERSION,
                pid: std::process::id(),
                uid: nix::unistd::getuid().as_raw(),
                token: token.clone(),
            };
            agent.send(&encode_json(0, Kind::Hello, &hello));
            greeted = true;
            continue;
        }
        dispatch(&agent, frame);
    }
    // The host hung up: a command it can no longer see or stop must not run on.
    for req in agent.requests.lock().unwrap_or_else(|p| p.into_inner()).values() {
        kill_tree(&agent, req);
    }
}

fn dispatch(agent: &Arc<Agent>, frame: Frame) {
    let id = frame.id;
    let req = agent.requests.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    match frame.kind {
        Kind::Request => {
            let request: Request = match serde_json::from_slice(&frame.payload) {
                Ok(r) => r,
                Err(e) => return agent.reply(id, &error(ErrorKind::BadRequest, format!("unknown request: {e}"))),
            };
            let req = Arc::new(Req::default());
            let takes_input = matches!(request, Request::Exec { stdin: true, .. } | Request::Untar {});
            let input = takes_input.then(|| {
                let (tx, rx) = mpsc::channel();
                *req.input.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
                rx
            });
            agent.requests.lock().unwrap_or_else(|p| p.into_inner()).insert(id, req.clone());
            let agent = agent.clone();
            let replies = agent.clone();
            if !spawn(move || serve(&agent, id, &req, request, input)) {
                replies.finish(id, &error(ErrorKind::Other, NO_THREAD));
            }
        }
        Kind::Data => {
            if let Some(tx) = req.as_ref().and_then(|r| r.input.lock().unwrap_or_else(|p| p.into_inner()).clone()) {
                let _ = tx.send(frame.payload);
            }
        }
        Kind::Eof => {
            if let Some(r) = req {
                r.input.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
        }
        Kind::Ack => {
            if let (Some(r), Ok(n)) = (req, <[u8; 4]>::try_from(frame.payload.as_slice())) {
                let mut f = r.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                *f = f.saturating_sub(u32::from_be_bytes(n));
                r.credit.notify_all();
            }
        }
        Kind::Cancel => {
            if let Some(r) = req {
                r.cancelled.store(true, Ordering::SeqCst);
                r.input.lock().unwrap_or_else(|p| p.into_inner()).take();
                r.credit.notify_all();
                kill_tree(agent, &r);
            }
        }
        Kind::Hello | Kind::Reply | Kind::Stdout | Kind::Stderr => {
            eprintln!("dagger-sandbox-agent: ignoring a {:?} frame from the host", frame.kind);
        }
    }
}

fn serve(agent: &Arc<Agent>, id: u32, req: &Arc<Req>, request: Request, input: Option<mpsc::Receiver<Vec<u8>>>) {
    let reply = match request {
        Request::Exec { argv, env, cwd, stdin: _, marker } => exec(agent, id, req, argv, env, cwd, marker, input),
        Request::Read { path, limit } => read(agent, id, req, &path, limit),
        Request::Stat { path } => match fs::symlink_metadata(&path) {
            Ok(m) => Reply::Stat { entry: Some(entry(String::new(), &m)) },
            Err(e) if matches!(e.kind(), IoKind::NotFound | IoKind::NotADirectory) => Reply::Stat { entry: None },
            // A loop or a refusal on the way is not "nothing there": the host tells the user.
            Err(e) => io_error(&format!("checking {path}"), &e),
        },
        Request::Remove { path } => remove(&path),
        Request::List { path, max } => list(agent, id, req, &path, max),
        Request::Untar {} => untar(agent, id, input),
    };
    agent.finish(id, &reply);
}

fn entry(name: String, m: &fs::Metadata) -> Entry {
    let t = m.file_type();
    let kind = if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    Entry { name, kind, size: m.len(), mode: m.mode() & 0o7777 }
}

#[allow(clippy::too_many_arguments)]
fn exec(
    agent: &Arc<Agent>,
    id: u32,
    req: &Arc<Req>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: String,
    marker: String,
    input: Option<mpsc::Receiver<Vec<u8>>>,
) -> Reply {
    if argv.is_empty() {
        return error(ErrorKind::BadRequest, "an exec without a program");
    }
    match fs::metadata(&cwd) {
        Ok(m) if m.is_dir() => {}
        _ => return error(ErrorKind::NotFound, format!("the working directory {cwd} does not exist")),
    }
    *req.marker.lock().unwrap_or_else(|p| p.into_inner()) = marker;
    req.shared.store(agent.live.fetch_add(1, Ordering::SeqCst) > 0, Ordering::SeqCst);
    req.seq.store(agent.started.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    let reply = run(agent, id, req, argv, env, cwd, input);
    agent.live.fetch_sub(1, Ordering::SeqCst);
    reply
}

/// Runs one command to its end (see [`exec`]).
fn run(
    agent: &Arc<Agent>,
    id: u32,
    req: &Arc<Req>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: String,
    input: Option<mpsc::Receiver<Vec<u8>>>,
) -> Reply {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env)
        .current_dir(&cwd)
        .process_group(0)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = {
        let mut children = agent.children.lock().unwrap_or_else(|p| p.into_inner());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return io_error(&format!("starting {}", argv[0]), &e),
        };
        children.insert(child.id() as i32);
        child
    };
    let pid = child.id() as i32;
    req.pgid.store(pid, Ordering::SeqCst);
    if req.cancelled.load(Ordering::SeqCst) {
        kill_tree(agent, req); // cancelled while it started
    }
    agent.reply(id, &Reply::Started { pid: child.id() });
    if let (Some(mut pipe), Some(rx)) = (child.stdin.take(), input) {
        // Apart from the command's own end: one that never reads its stdin must still finish.
        let feeder = agent.clone();
        let fed = spawn(move || {
            let agent = feeder;
            let mut open = true;
            for data in rx {
                agent.send(&encode(id, Kind::Ack, &1u32.to_be_bytes()));
                // A command that stopped reading drops the rest, as a closed pipe would.
                open = open && pipe.write_all(&data).is_ok();
            }
        });
        if !fed {
            return abandon(agent, req, &mut child, pid);
        }
    }
    // Output is read on threads of its own; what the command wrote before it exited is in the
    // pipes when `wait` returns. A background process that keeps them open gets two more seconds,
    // as the engine gives an exec, then the command's end is reported without it.
    let output_open = Arc::new(AtomicBool::new(true));
    let (ended_tx, ended) = mpsc::channel::<()>();
    let mut pumps = 0;
    for (pipe, kind) in [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), Kind::Stdout),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), Kind::Stderr),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let (pump_agent, pump_req, open, ended_tx) =
            (agent.clone(), req.clone(), output_open.clone(), ended_tx.clone());
        pumps += 1;
        let pumping = spawn(move || {
            let (agent, req) = (pump_agent, pump_req);
            let mut buf = vec![0u8; CHUNK];
            loop {
                match pipe.read(&mut buf) {
                    Ok(n) if n > 0 && open.load(Ordering::SeqCst) => {
                        if !agent.send_data(id, &req, kind, &buf[..n]) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if open.load(Ordering::SeqCst) {
                agent.send(&encode(id, Kind::Eof, &[kind as u8]));
            }
            let _ = ended_tx.send(());
        });
        if !pumping {
            return abandon(agent, req, &mut child, pid);
        }
    }
    let status = child.wait();
    agent.children.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
    let grace = std::time::Instant::now() + OUTPUT_GRACE;
    for _ in 0..pumps {
        let left = grace.saturating_duration_since(std::time::Instant::now());
        if ended.recv_timeout(left).is_err() {
            break;
        }
    }
    output_open.store(false, Ordering::SeqCst);
    // A pump still waiting for the host's window stops: the request is over.
    req.cancelled.store(true, Ordering::SeqCst);
    req.credit.notify_all();
    match status {
        Ok(status) => Reply::Exit {
            code: status.code().map(i64::from).unwrap_or_else(|| 128 + i64::from(status.signal().unwrap_or(0))),
        },
        Err(e) => io_error("waiting for the command", &e),
    }
}

fn read(agent: &Agent, id: u32, req: &Req, path: &str, limit: u64) -> Reply {
    // Non-blocking, so a fifo is refused below instead of waiting for a writer forever.
    let mut f = match fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) => return io_error(&format!("opening {path}"), &e),
    };
    let m = match f.metadata() {
        Ok(m) => m,
        Err(e) => return io_error(&format!("reading {path}"), &e),
    };
    if m.is_dir() {
        return error(ErrorKind::IsDir, format!("{path} is a directory"));
    }
    if !m.is_file() {
        return error(ErrorKind::NotFile, format!("{path} is not a regular file"));
    }
    let size = m.len();
    if size > limit {
        return Reply::Error {
            kind: ErrorKind::TooLarge,
            message: format!("{path} has {size} bytes"),
            size: Some(size),
        };
    }
    agent.reply(id, &Reply::Size { size });
    let mut left = size;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => return error(ErrorKind::Other, format!("{path} got shorter while it was read")),
            Ok(n) => n,
            Err(e) => return io_error(&format!("reading {path}"), &e),
        };
        if !agent.send_data(id, req, Kind::Data, &buf[..n]) {
            return error(ErrorKind::Other, "cancelled");
        }
        left -= n as u64;
    }
    Reply::Done {}
}

fn remove(path: &str) -> Reply {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Reply::Done {},
        Err(e) => io_error(&format!("deleting {path}"), &e),
    }
}

fn list(agent: &Agent, id: u32, req: &Req, path: &str, max: usize) -> Reply {
    let dir = match fs::read_dir(path) {
        Ok(d) => d,
        Err(e) => return io_error(&format!("listing {path}"), &e),
    };
    let mut batch = Vec::new();
    let mut count = 0;
    for e in dir {
        let e = match e {
            Ok(e) => e,
            Err(e) => return io_error(&format!("listing {path}"), &e),
        };
        // An entry removed since the directory was read is left out, as `ls` would.
        let Ok(m) = e.path().symlink_metadata() else { continue };
        batch.push(entry(e.file_name().to_string_lossy().into_owned(), &m));
        count += 1;
        if batch.len() == LIST_BATCH && !send_entries(agent, id, req, &mut batch) {
            return error(ErrorKind::Other, "cancelled");
        }
        if count >= max {
            break;
        }
    }
    if !batch.is_empty() && !send_entries(agent, id, req, &mut batch) {
        return error(ErrorKind::Other, "cancelled");
    }
    Reply::Done {}
}

/// Sends a batch of entries as one data frame (a JSON array), under the window.
fn send_entries(agent: &Agent, id: u32, req: &Req, batch: &mut Vec<Entry>) -> bool {
    let json = serde_json::to_vec(&std::mem::take(batch)).expect("entries serialize");
    agent.send_data(id, req, Kind::Data, &json)
}

/// The host's data frames of one request as a reader, acknowledging each as it is taken.
struct Input<'a> {
    agent: &'a Agent,
    id: u32,
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Input<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(data) => {
                    self.agent.send(&encode(self.id, Kind::Ack, &1u32.to_be_bytes()));
                    self.cur = data;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn untar(agent: &Agent, id: u32, input: Option<mpsc::Receiver<Vec<u8>>>) -> Reply {
    let Some(rx) = input else { return error(ErrorKind::BadRequest, "an untar without data") };
    let mut input = Input { agent, id, rx, cur: Vec::new(), pos: 0 };
    let mut archive = tar::Archive::new(&mut input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return io_error("reading the archive", &e),
    };
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(e) => return io_error("reading the archive", &e),
        };
        let name = e.path().map(|p| p.display().to_string()).unwrap_or_default();
        if let Err(err) = e.unpack_in(Path::new("/")) {
            // A file where a directory must go (or the other way round) is the caller's conflict.
            return match err.kind() {
                IoKind::NotADirectory | IoKind::IsADirectory | IoKind::AlreadyExists | IoKind::DirectoryNotEmpty => {
                    error(ErrorKind::Conflict, format!("writing /{name}: {err}"))
                }
                _ => io_error(&format!("writing /{name}"), &err),
            };
        }
    }
    // Whatever follows the archive's end (padding) is read, so every frame is acknowledged.
    let _ = io::copy(&mut input, &mut io::sink());
    Reply::Done {}
}

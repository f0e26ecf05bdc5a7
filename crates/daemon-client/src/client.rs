//! A client of the REST API (docs/rest-api.md): finds the daemon of a state dir through
//! `daemon.json` and its token (after an identity proof), starts one in the background when none
//! answers, and turns API error bodies into [`CodedError`]s with the API's stable code.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::identity as auth;
use crate::state::{self, DaemonInfo};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

mod snapshots;

/// The result of a daemon call.
pub type Result<T, E = CodedError> = std::result::Result<T, E>;

/// Environment variable naming the `dagger-sandbox` executable a library starts the daemon with
/// (default: this program when it is `dagger-sandbox`, else `dagger-sandbox` on `PATH`).
pub const BIN_ENV: &str = "DAGGER_SANDBOX_BIN";

/// How long the CLI waits for a daemon it started to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a health probe may take before the daemon counts as not answering.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// A start lock older than this is taken over: its holder is stuck or gone.
const STALE_LOCK: Duration = Duration::from_secs(30);

/// An error with a stable code (`NOT_FOUND`, `UNAUTHORIZED`, ...), from the API or the core.
#[derive(Debug)]
pub struct CodedError {
    /// The stable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl std::fmt::Display for CodedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodedError {}

impl CodedError {
    /// An error with this code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CodedError { code: code.into(), message: message.into() }
    }

    /// The stable code (`NOT_FOUND`, `SESSION_ENDED`, `ENGINE_UNAVAILABLE`, ...).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The daemon could not be reached or started (`ENGINE_UNAVAILABLE`).
    fn unavailable(message: impl Into<String>) -> Self {
        CodedError::new("ENGINE_UNAVAILABLE", message)
    }

    /// A host-side failure (`IO_ERROR`) while doing `what`.
    fn io(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        CodedError::new("IO_ERROR", format!("{what}: {e}"))
    }
}

/// A connection to the daemon of one state dir; cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// What a probe of the state dir's daemon found (for `doctor`, which must not start one).
#[derive(Debug)]
pub struct Probe {
    /// The contents of `daemon.json`, if any.
    pub info: Option<DaemonInfo>,
    /// The `/api/health` answer, when the daemon answered it with the token.
    pub health: Option<Value>,
    /// Why it does not count as running, when it does not.
    pub problem: Option<String>,
}

fn http_client() -> Result<reqwest::Client> {
    // The daemon is always on loopback: a proxy from the environment must never see the token.
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| CodedError::io("building the HTTP client", e))
}

/// Probes the daemon of `state_dir` without starting one.
pub async fn probe(state_dir: &Path) -> Result<Probe> {
    let http = http_client()?;
    let info = state::read_daemon_info(state_dir);
    let Some(i) = &info else {
        return Ok(Probe { info, health: None, problem: Some("no daemon.json (never started here)".into()) });
    };
    let token = state::read_token(state_dir).unwrap_or_default().unwrap_or_default();
    match health(&http, &i.addr, &token).await {
        Ok(h) => Ok(Probe { info, health: Some(h), problem: None }),
        Err(e) => Ok(Probe { info, health: None, problem: Some(e.why) }),
    }
}

/// Why the recorded address does not count as this state dir's daemon.
#[derive(Debug)]
struct NotOurs {
    /// What happened, for people.
    why: String,
    /// Something answered there but could not prove it holds the token (another program, or
    /// another user's, bound the port after our daemon died).
    impostor: bool,
}

impl NotOurs {
    fn gone(why: String) -> Self {
        NotOurs { why, impostor: false }
    }
}

/// Checks that the program at `addr` holds `token`, WITHOUT sending it: it must answer
/// `GET /api/identity` with the HMAC of a fresh nonce under the token (docs/rest-api.md).
async fn verify_identity(http: &reqwest::Client, addr: &str, token: &str) -> Result<(), NotOurs> {
    let nonce = auth::new_nonce();
    let req = http.get(format!("http://{addr}/api/identity?nonce={nonce}")).timeout(HEALTH_TIMEOUT);
    let resp = req.send().await.map_err(|e| NotOurs::gone(format!("no answer at {addr}: {}", root_cause(&e))))?;
    let impostor = |what: String| NotOurs {
        why: format!(
            "the program listening at {addr} (recorded in daemon.json) is not this state dir's daemon: {what}; \
             the token was not sent to it"
        ),
        impostor: true,
    };
    if !resp.status().is_success() {
        return Err(impostor(format!("it answered the identity check with {}", resp.status())));
    }
    let body: Value = resp.json().await.map_err(|e| impostor(format!("it sent a bad identity answer ({e})")))?;
    let proof = body.get("proof").and_then(Value::as_str).unwrap_or_default();
    if !auth::proof_matches(token, &nonce, proof) {
        return Err(impostor("it could not prove it holds the token".into()));
    }
    Ok(())
}

/// Proves the daemon's identity, then `GET /api/health` with the token, bounded; the error says
/// why it does not count as running.
async fn health(http: &reqwest::Client, addr: &str, token: &str) -> Result<Value, NotOurs> {
    verify_identity(http, addr, token).await?;
    let req = http.get(format!("http://{addr}/api/health")).bearer_auth(token).timeout(HEALTH_TIMEOUT);
    let resp = req.send().await.map_err(|e| NotOurs::gone(format!("no answer at {addr}: {}", root_cause(&e))))?;
    if !resp.status().is_success() {
        return Err(NotOurs::gone(format!("{addr} answered {}", resp.status())));
    }
    let body: Value = resp.json().await.map_err(|e| NotOurs::gone(format!("{addr} sent a bad health answer: {e}")))?;
    if body.get("status").and_then(Value::as_str) != Some("ok") {
        return Err(NotOurs::gone(format!("{addr} is not healthy: {body}")));
    }
    Ok(body)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Holds `daemon.start.lock` so that many CLIs starting at once spawn one daemon, not one each.
struct StartLock(PathBuf);

impl StartLock {
    fn try_acquire(state_dir: &Path) -> Option<StartLock> {
        let path = state_dir.join("daemon.start.lock");
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Some(StartLock(path));
                }
                Err(_) if lock_is_stale(&path) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for StartLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn lock_is_stale(path: &Path) -> bool {
    let holder_alive = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_LOCK);
    !holder_alive || old
}

/// Starts `dagger-sandbox serve` for `state_dir` in its own process group, output to daemon.log.
fn spawn_daemon(state_dir: &Path) -> Result<Child> {
    let exe = daemon_executable()?;
    let log_path = state::daemon_log_path(state_dir);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CodedError::io(format!("opening {}", log_path.display()), e))?;
    let _ =
        writeln!(log, "--- {} dagger-sandbox starting the daemon in the background", chrono::Utc::now().to_rfc3339());
    let err = log.try_clone().map_err(|e| CodedError::io("duplicating the daemon log handle", e))?;
    let child = Command::new(&exe)
        .arg("serve")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a Ctrl-C in the terminal that ran one CLI command must not stop the
        // daemon every later command relies on.
        .process_group(0)
        .spawn()
        .map_err(|e| CodedError::unavailable(format!("starting the daemon ({}): {e}", exe.display())))?;
    tracing::debug!(pid = child.id(), "daemon started in the background");
    Ok(child)
}

/// The executable to start the daemon with: `$DAGGER_SANDBOX_BIN`, this program when it is
/// `dagger-sandbox` (the CLI), else `dagger-sandbox` on `PATH`.
fn daemon_executable() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    if let Ok(me) = std::env::current_exe() {
        if me.file_name().is_some_and(|n| n == "dagger-sandbox") {
            return Ok(me);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("dagger-sandbox"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CodedError::unavailable(format!(
                "no daemon runs for this state dir and the dagger-sandbox executable to start one was not found: \
                 put it on PATH or name it in {BIN_ENV}"
            ))
        })
}

/// The size of daemon.log now, so a start's failure shows only what that start wrote.
fn log_len(state_dir: &Path) -> u64 {
    std::fs::metadata(state::daemon_log_path(state_dir)).map_or(0, |m| m.len())
}

/// The end of what daemon.log gained after `from`.
fn log_tail(state_dir: &Path, from: u64) -> String {
    let bytes = std::fs::read(state::daemon_log_path(state_dir)).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    dagger_sandbox_validate::tail(&String::from_utf8_lossy(&bytes[start..]), 10, 2000)
}

impl Client {
    /// Connects to the daemon of `state_dir`, starting one in the background when none answers.
    pub async fn connect(state_dir: &Path) -> Result<Client> {
        let http = http_client()?;
        state::ensure_dir(state_dir)
            .map_err(|e| CodedError::io(format!("creating the state dir {}", state_dir.display()), e))?;
        match Self::try_existing(&http, state_dir).await {
            Ok(c) => return Ok(c),
            Err(Some(e)) if e.impostor => tracing::warn!("{}; starting a daemon of our own", e.why),
            Err(_) => {}
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut started: Option<(Child, StartLock, u64)> = None;
        let mut gave_way = false;
        loop {
            if let Ok(c) = Self::try_existing(&http, state_dir).await {
                return Ok(c);
            }
            if let Some((child, _, log_from)) = &mut started {
                if let Ok(Some(status)) = child.try_wait() {
                    let tail = log_tail(state_dir, *log_from);
                    // A daemon that is still starting holds the state dir: ours gave way, so wait
                    // for that one instead of failing.
                    if !tail.contains("another daemon is already running") {
                        return Err(CodedError::unavailable(format!(
                            "the daemon exited during start ({status}); its log {} ends with:\n{tail}",
                            state::daemon_log_path(state_dir).display()
                        )));
                    }
                    started = None;
                    gave_way = true;
                }
            } else if gave_way {
                // Keep polling the daemon that holds the state dir.
            } else if let Some(lock) = StartLock::try_acquire(state_dir) {
                // Another CLI may have finished starting one between our probe and the lock.
                if let Ok(c) = Self::try_existing(&http, state_dir).await {
                    return Ok(c);
                }
                let from = log_len(state_dir);
                started = Some((spawn_daemon(state_dir)?, lock, from));
            }
            if Instant::now() >= deadline {
                let from = started.as_ref().map_or(0, |s| s.2);
                return Err(CodedError::unavailable(format!(
                    "no daemon answered within {}s for the state dir {}; see {}, which ends with:\n{}",
                    START_TIMEOUT.as_secs(),
                    state_dir.display(),
                    state::daemon_log_path(state_dir).display(),
                    log_tail(state_dir, from)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The recorded daemon, once it proved its identity and answered health; `Err(None)` when
    /// nothing is recorded.
    async fn try_existing(http: &reqwest::Client, state_dir: &Path) -> Result<Client, Option<NotOurs>> {
        let info = state::read_daemon_info(state_dir).ok_or(None)?;
        let token = state::read_token(state_dir).ok().flatten().ok_or(None)?;
        match health(http, &info.addr, &token).await {
            Ok(_) => Ok(Client { http: http.clone(), base: format!("http://{}", info.addr), token }),
            Err(e) => {
                tracing::debug!(why = %e.why, "the recorded daemon does not answer");
                Err(Some(e))
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// Sends a request and returns its response, or the API error it answered with.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let resp = req.send().await.map_err(|e| {
            CodedError::unavailable(format!("the daemon at {} failed to answer: {}", self.base, root_cause(&e)))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<(String, String)> = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((e.get("code")?.as_str()?.to_string(), e.get("message")?.as_str()?.to_string()))
        });
        let (code, message) = parsed.unwrap_or_else(|| {
            (format!("HTTP_{}", status.as_u16()), format!("the daemon answered {status}: {}", text.trim()))
        });
        Err(CodedError { code, message })
    }

    async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| CodedError::io("reading the daemon's answer", e))
    }

    /// `GET /api/sandbox[?all=true]`: the sessions, newest first.
    pub async fn list(&self, all: bool) -> Result<Vec<Value>> {
        let path = if all { "/api/sandbox?all=true" } else { "/api/sandbox" };
        let v = self.json(self.request(Method::GET, path)).await?;
        Ok(v.get("sandboxes").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// `POST /api/sandbox`: creates a session.
    pub async fn create(&self, body: &Value) -> Result<Value> {
        self.json(self.request(Method::POST, "/api/sandbox").json(body)).await
    }

    /// `DELETE /api/sandbox/:id`: stops a session.
    pub async fn stop(&self, id: &str) -> Result<Value> {
        self.json(self.request(Method::DELETE, &format!("/api/sandbox/{}", encode(id)))).await
    }

    /// `POST /api/sandbox/:id/<action>` with no body (`stop`, `resume`, `attach`).
    pub async fn session_post(&self, id: &str, action: &str) -> Result<Value> {
        self.json(self.request(Method::POST, &format!("/api/sandbox/{}/{action}", encode(id)))).await
    }

    /// `DELETE /api/sandbox`: stops every session.
    pub async fn clean(&self) -> Result<Value> {
        self.json(self.request(Method::DELETE, "/api/sandbox")).await
    }

    /// `POST /api/sandbox/:id/exec`: runs a command; a non-zero exit is a result.
    pub async fn exec(&self, id: &str, body: &Value) -> Result<Value> {
        self.json(self.request(Method::POST, &format!("/api/sandbox/{}/exec", encode(id))).json(body)).await
    }

    /// `GET /api/sandbox/:id/logs`: the server-sent event stream.
    pub async fn logs(&self, id: &str, follow: bool) -> Result<Response> {
        let mut path = format!("/api/sandbox/{}/logs", encode(id));
        if follow {
            path.push_str("?follow=true");
        }
        self.send(self.request(Method::GET, &path)).await
    }
}

/// Percent-encodes a path segment, so an id with odd characters cannot change the route.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Parses a server-sent event stream incrementally: feed bytes, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Adds bytes and returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_parsed_across_chunk_boundaries() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: log\ndata: {\"a\"").is_empty());
        let evs = p.feed(b":1}\n\n: keepalive\n\nevent: end\r\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(
            evs,
            vec![
                SseEvent { event: "log".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "end".into(), data: "x\ny".into() },
            ]
        );
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(encode("sbx-0123abc"), "sbx-0123abc");
        assert_eq!(encode("../x y"), "..%2Fx%20y");
    }
}

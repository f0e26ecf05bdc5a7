//! Holding a Dagger engine: connecting to what detection found (an existing session, a CLI of the
//! SDK's line, the SDK's own provisioning), bounded and version-checked, and one session per
//! process, shared by every dagger sandbox and closed with the last of them.
//!
//! The SDK's `connect` hands the connection to a closure and has no timeout of its own; a stuck CLI
//! makes it hang forever, a failing `_EXPERIMENTAL_DAGGER_CLI_BIN` is silently replaced by a
//! download, and `dagger` on `PATH` is only used when a release is missing. So the CLI is started
//! here, the same way the SDK starts it (`dagger session --label ...`, connect params as the first
//! JSON line on stdout), on a thread and runtime of its own that owns the child process and its
//! pipes: the session outlives whichever runtime created it (every test case has its own), the
//! pipes are always drained, and the child is killed (not orphaned) when the session ends.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dagger_sdk::core::connect_params::ConnectParams;
use dagger_sdk::{Query, Selection};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;

use super::client::SessionClient;
use super::detect::Source;
use super::version::{cli_version, judge, Compat, SDK_VERSION};

/// Longest CLI stderr line kept whole; longer ones (a progress bar, binary junk) are cut.
const STDERR_LINE_MAX: usize = 4096;

/// How long a CLI gets to exit after its stdin closes before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Lines of CLI stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// A live connection to an engine, shared by every dagger sandbox of the process.
pub(crate) struct Session {
    /// The GraphQL root; clones are cheap and carry no process handle.
    pub conn: Query,
    /// Where it came from, for logs and messages.
    pub describe: String,
    /// Set once the CLI behind the session has exited.
    dead: Arc<AtomicBool>,
    /// Dropping this tells the session thread to shut the CLI down.
    _stop: Option<oneshot::Sender<()>>,
}

impl Session {
    /// Whether the CLI behind it still runs (a session from the environment is assumed to).
    pub fn alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("describe", &self.describe).field("alive", &self.alive()).finish()
    }
}

/// The query root of the session at `params`, over the proxy-free pooled client.
fn query_root(params: &ConnectParams) -> Result<Query, String> {
    let port = u16::try_from(params.port).map_err(|_| format!("the session port {} is not a port", params.port))?;
    let client = SessionClient::new(port, &params.session_token)?;
    Ok(Query { proc: None, selection: Selection::default(), graphql_client: client.into_dyn() })
}

/// Drains a CLI's stderr as bytes (a line reader would stop at the first non-UTF-8 byte and leave
/// the CLI blocked on a full pipe), logging each line and keeping the last few for messages.
pub(crate) async fn drain_stderr(stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = buf.len().min(STDERR_LINE_MAX);
        let line = String::from_utf8_lossy(&buf[..end]).trim_end().to_string();
        tracing::debug!(target: "dagger_sandbox::dagger_cli", "{line}");
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == STDERR_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// Checks that a session answers a real query; the SDK validates nothing at connect.
async fn probe(conn: &Query, left: Duration) -> Result<String, String> {
    let conn = conn.clone();
    // In a task: the SDK can panic on a malformed response, and that must not take the caller down.
    let task = tokio::spawn(async move { conn.version().await });
    match tokio::time::timeout(left, task).await {
        Err(_) => Err(format!("no answer to a version query within {} ms", left.as_millis())),
        Ok(Err(join)) => Err(format!("the version query failed: {join}")),
        Ok(Ok(Err(e))) => Err(format!("the version query failed: {}", super::error::describe(&e))),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

/// Starts `cli session` on a thread of its own and waits (at most `left`) for its connect params.
async fn start_cli(cli: &Path, left: Duration) -> Result<Session, String> {
    let (params_tx, params_rx) = oneshot::channel::<Result<ConnectParams, String>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let dead = Arc::new(AtomicBool::new(false));
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let (cli_path, dead2, tail2) = (cli.to_path_buf(), dead.clone(), stderr_tail.clone());
    let thread = std::thread::Builder::new().name("dagger-session".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = params_tx.send(Err(format!("starting a runtime for the session: {e}")));
                return;
            }
        };
        rt.block_on(run_cli(cli_path, params_tx, stop_rx, tail2));
        dead2.store(true, Ordering::SeqCst);
    });
    if let Err(e) = thread {
        return Err(format!("starting the session thread: {e}"));
    }
    let tail = || {
        let t = stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_empty() {
            String::new()
        } else {
            format!("; its last output: {}", t.iter().cloned().collect::<Vec<_>>().join(" | "))
        }
    };
    // On every early return stop_tx drops, and the session thread kills the CLI.
    match tokio::time::timeout(left, params_rx).await {
        Err(_) => Err(format!(
            "`{} session` did not connect within {} ms (a first run pulls the engine image, which can take \
             minutes: raise daggerConnectTimeoutMs){}",
            cli.display(),
            left.as_millis(),
            tail()
        )),
        Ok(Err(_)) => Err(format!("`{} session` stopped before connecting{}", cli.display(), tail())),
        Ok(Ok(Err(why))) => Err(format!("{why}{}", tail())),
        Ok(Ok(Ok(params))) => Ok(Session {
            conn: query_root(&params)?,
            describe: format!("`{} session` on 127.0.0.1:{}", cli.display(), params.port),
            dead,
            _stop: Some(stop_tx),
        }),
    }
}

/// The session thread: runs the CLI, hands over its connect params, drains its output into the
/// log, and shuts it down when told (stdin EOF, then a kill after a grace period) or when it dies.
async fn run_cli(
    cli: PathBuf,
    params_tx: oneshot::Sender<Result<ConnectParams, String>>,
    mut stop_rx: oneshot::Receiver<()>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
) {
    let sdk_version = SDK_VERSION.trim_start_matches('v');
    let spawned = tokio::process::Command::new(&cli)
        .arg("session")
        .args(["--label", "dagger.io/sdk.name:rust", "--label"])
        .arg(format!("dagger.io/sdk.version:{sdk_version}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = params_tx.send(Err(format!("could not run {}: {e}", cli.display())));
            return;
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = params_tx.send(Err("the CLI's pipes were not set up".into()));
        return;
    };
    let stdin = child.stdin.take();
    tokio::spawn(drain_stderr(stderr, stderr_tail));
    let mut params_tx = Some(params_tx);
    // Bytes, not a line reader: one non-UTF-8 byte must not stop the drain. `read_until` appends to
    // `line` across select iterations, so a line interrupted by another branch is not lost.
    let mut out = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut out_open = true;
    loop {
        tokio::select! {
            _ = &mut stop_rx => break,
            n = out.read_until(b'\n', &mut line), if out_open => match n {
                Ok(n) if n > 0 && line.ends_with(b"\n") => {
                    match serde_json::from_slice::<ConnectParams>(&line) {
                        Ok(p) if params_tx.is_some() => {
                            if let Some(tx) = params_tx.take() {
                                let _ = tx.send(Ok(p));
                            }
                        }
                        _ => tracing::debug!(target: "dagger_sandbox::dagger_cli", "{}", String::from_utf8_lossy(&line)),
                    }
                    line.clear();
                }
                // A line without its end yet: keep reading, but never hold an endless one.
                Ok(n) if n > 0 => {
                    if line.len() > STDERR_LINE_MAX * 16 {
                        line.clear();
                    }
                }
                _ => out_open = false,
            },
            status = child.wait() => {
                let why = match status {
                    Ok(s) => format!("`{} session` exited ({s}) before connecting", cli.display()),
                    Err(e) => format!("waiting for `{} session`: {e}", cli.display()),
                };
                if let Some(tx) = params_tx.take() {
                    let _ = tx.send(Err(why));
                } else {
                    tracing::warn!("the dagger session ended: {why}");
                }
                return;
            }
        }
    }
    // Told to stop: EOF on stdin is the CLI's signal to end the session cleanly; one that does not
    // go in time, or that never connected (the caller gave up on it), is killed (our child, by pid).
    drop(stdin);
    let grace = if params_tx.is_some() { Duration::ZERO } else { SHUTDOWN_GRACE };
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(
            "the dagger CLI did not exit within {} s of its stdin closing; killing it",
            SHUTDOWN_GRACE.as_secs()
        );
        let _ = child.kill().await;
    }
}

/// The SDK's own provisioning: download the CLI of [`SDK_VERSION`] into its cache (checksum checked).
async fn provision(left: Duration) -> Result<PathBuf, String> {
    let task =
        tokio::spawn(
            async move { dagger_sdk::core::downloader::Downloader::new(SDK_VERSION.to_string()).get_cli().await },
        );
    match tokio::time::timeout(left, task).await {
        Err(_) => Err(format!("no download within {} ms (is dl.dagger.io reachable?)", left.as_millis())),
        Ok(Err(join)) => Err(format!("the download failed: {join}")),
        Ok(Ok(Err(e))) => Err(super::error::describe(&e)),
        Ok(Ok(Ok(p))) => Ok(p),
    }
}

/// Tries each source in order within `bound` overall; the error lists every attempt.
pub(crate) async fn connect(sources: &[Source], bound: Duration) -> Result<Session, Vec<String>> {
    let started = Instant::now();
    let mut tried = Vec::new();
    let left = |tried: &mut Vec<String>| {
        let l = bound.saturating_sub(started.elapsed());
        if l.is_zero() {
            tried.push(format!("gave up after {} ms (daggerConnectTimeoutMs)", bound.as_millis()));
        }
        l
    };
    for source in sources {
        let l = left(&mut tried);
        if l.is_zero() {
            break;
        }
        match source {
            Source::Session { port, token } => {
                let params = ConnectParams::new(u64::from(*port), token);
                let conn = match query_root(&params) {
                    Ok(c) => c,
                    Err(why) => {
                        tried.push(why);
                        continue;
                    }
                };
                match probe(&conn, l).await.and_then(|v| engine_ok(v, "the engine of DAGGER_SESSION_PORT")) {
                    Ok(v) => {
                        return Ok(Session {
                            conn,
                            describe: format!("session on 127.0.0.1:{port} (engine {v})"),
                            dead: Arc::new(AtomicBool::new(false)),
                            _stop: None,
                        })
                    }
                    Err(why) => tried.push(format!("session on DAGGER_SESSION_PORT={port}: {why}")),
                }
            }
            Source::Cli { path, origin } => match try_cli(path, l, &mut tried).await {
                Some(s) => return Ok(s),
                None => {
                    if let Some(last) = tried.last_mut() {
                        *last = format!("{} {}: {last}", origin.describe(), path.display());
                    }
                }
            },
            Source::Provision => match provision(l).await {
                Ok(path) => {
                    let l = left(&mut tried);
                    if l.is_zero() {
                        break;
                    }
                    match try_cli(&path, l, &mut tried).await {
                        Some(s) => return Ok(s),
                        None => {
                            if let Some(last) = tried.last_mut() {
                                *last = format!("downloaded CLI {}: {last}", path.display());
                            }
                        }
                    }
                }
                Err(why) => tried.push(format!("SDK download of CLI {SDK_VERSION}: {why}")),
            },
        }
    }
    Err(tried)
}

/// `Ok(version)` when an engine of `version` can be used; the refusal otherwise.
fn engine_ok(version: String, what: &str) -> Result<String, String> {
    match judge(what, &version) {
        Compat::Verified => Ok(version),
        Compat::SameLine => {
            tracing::info!(engine = %version, verified = super::version::VERIFIED, "dagger engine of the SDK's line, not the verified release");
            Ok(version)
        }
        Compat::Refused(why) => Err(why),
    }
}

/// A CLI's version, checked before it is started: one of another line would connect, then fail on
/// the first query with a schema error that names neither version.
async fn cli_ok(path: &Path) -> Result<String, String> {
    let v = cli_version(path).await?;
    match judge(&format!("the CLI {}", path.display()), &v) {
        Compat::Refused(why) => Err(why),
        _ => Ok(v),
    }
}

async fn try_cli(path: &Path, left: Duration, tried: &mut Vec<String>) -> Option<Session> {
    let started = Instant::now();
    if let Err(why) = cli_ok(path).await {
        tried.push(why);
        return None;
    }
    match start_cli(path, left.saturating_sub(started.elapsed())).await {
        Ok(s) => match probe(&s.conn, left.saturating_sub(started.elapsed()))
            .await
            .and_then(|v| engine_ok(v, "the engine this CLI reached"))
        {
            Ok(v) => Some(Session { describe: format!("{} (engine {v})", s.describe), ..s }),
            Err(why) => {
                tried.push(why);
                None
            }
        },
        Err(why) => {
            tried.push(why);
            None
        }
    }
}

/// The process's shared session, if one is alive.
static SHARED: Mutex<Weak<Session>> = Mutex::new(Weak::new());
/// Serialises connecting, so sandboxes created together share one session instead of racing.
static CONNECTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The live shared session, or a new one from `sources` within `bound`.
pub(crate) async fn shared(sources: &[Source], bound: Duration) -> Result<Arc<Session>, Vec<String>> {
    let started = Instant::now();
    let _one = match tokio::time::timeout(bound, CONNECTING.lock()).await {
        Ok(g) => g,
        Err(_) => return Err(vec![format!("another sandbox was still connecting after {} ms", bound.as_millis())]),
    };
    if let Some(s) = SHARED.lock().unwrap_or_else(|p| p.into_inner()).upgrade().filter(|s| s.alive()) {
        return Ok(s);
    }
    let s = Arc::new(connect(sources, bound.saturating_sub(started.elapsed())).await?);
    tracing::info!(session = %s.describe, "connected to a dagger engine");
    *SHARED.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&s);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dagger::detect::CliOrigin;
    use crate::backend::dagger::fake_cli::exe;

    /// The line a fake CLI prints for `version`, as the real 0.21.8 CLI does.
    const VERSION_OK: &str =
        "[ \"$1\" = version ] && { echo 'dagger v0.21.8 (docker-container://e) linux/amd64'; exit 0; }\n";

    #[tokio::test]
    async fn a_cli_that_never_connects_is_cut_off_by_the_bound_and_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let script =
            format!("#!/bin/sh\n{VERSION_OK}echo $$ > {}\necho provisioning >&2\nexec sleep 300\n", pidfile.display());
        let cli = exe(tmp.path(), "hang-dagger", &script);
        let started = Instant::now();
        let err = connect(&[Source::Cli { path: cli, origin: CliOrigin::EnvVar }], Duration::from_millis(1500))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "the bound did not hold");
        let text = err.join("; ");
        assert!(text.contains("did not connect within") && text.contains("daggerConnectTimeoutMs"), "{text}");
        assert!(text.contains("provisioning"), "the CLI's last output is in the message: {text}");
        // The hung CLI is killed, not orphaned.
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let mut gone = false;
        for _ in 0..100 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if status.is_empty() || status.split_whitespace().nth(2) == Some("Z") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the hung dagger CLI (pid {pid}) is still running");
    }

    #[tokio::test]
    async fn a_cli_that_exits_early_says_so_with_its_output() {
        let tmp = tempfile::tempdir().unwrap();
        let cli = exe(
            tmp.path(),
            "bad-dagger",
            &format!("#!/bin/sh\n{VERSION_OK}echo 'Error: cannot reach docker' >&2\nexit 1\n"),
        );
        let err = connect(&[Source::Cli { path: cli.clone(), origin: CliOrigin::Path }], Duration::from_secs(20))
            .await
            .unwrap_err()
            .join("; ");
        assert!(err.contains("dagger on PATH") && err.contains(&cli.display().to_string()), "{err}");
        assert!(err.contains("exited") || err.contains("stopped before connecting"), "{err}");
    }

    #[tokio::test]
    async fn a_session_env_pointing_at_nothing_fails_its_probe() {
        // Port 1 on loopback: nothing listens there, so the refusal is immediate.
        let err = connect(&[Source::Session { port: 1, token: "t".into() }], Duration::from_secs(10))
            .await
            .unwrap_err()
            .join("; ");
        assert!(err.contains("DAGGER_SESSION_PORT=1") && err.contains("version query failed"), "{err}");
    }

    #[tokio::test]
    async fn a_cli_of_another_line_is_refused_before_it_is_started() {
        let tmp = tempfile::tempdir().unwrap();
        let started = tmp.path().join("started");
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = version ] && {{ echo 'dagger v0.19.2 (image://x) linux/amd64'; exit 0; }}\ntouch {}\nexec sleep 300\n",
            started.display()
        );
        let old = exe(tmp.path(), "dagger", &script);
        let err = connect(&[Source::Cli { path: old.clone(), origin: CliOrigin::Path }], Duration::from_secs(20))
            .await
            .unwrap_err()
            .join("; ");
        assert!(err.contains("0.19.2") && err.contains("0.21.8") && err.contains("older"), "{err}");
        assert!(err.contains("dagger on PATH"), "{err}");
        assert!(!started.exists(), "a CLI of another line must not be started");
    }

    #[tokio::test]
    async fn cli_stderr_is_drained_as_bytes_past_invalid_utf8() {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut input = b"starting\n\xff\xfe not utf-8 \x80\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        input.extend(b"\nlast line\n");
        drain_stderr(&input[..], tail.clone()).await;
        let t: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
        assert_eq!(t.len(), 4, "{t:?}");
        assert!(t[1].contains("not utf-8"), "{t:?}");
        assert!(t[2].len() <= STDERR_LINE_MAX, "a huge line is cut");
        assert_eq!(t[3], "last line");
    }
}

//! Finding and holding a Dagger engine: bounded detection (an existing session, a CLI, the SDK's
//! own provisioning) and one session per process, shared by every dagger sandbox and closed with
//! the last of them.
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
use dagger_sdk::core::graphql_client::DefaultGraphQLClient;
use dagger_sdk::{Config, Query, Selection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

/// The CLI (and engine) version this SDK speaks; the SDK downloads exactly this one.
pub(crate) const CLI_VERSION: &str = dagger_sdk::core::DAGGER_ENGINE_VERSION;

/// How long a CLI gets to exit after its stdin closes before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Lines of CLI stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// Where a CLI binary was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CliOrigin {
    /// `_EXPERIMENTAL_DAGGER_CLI_BIN`.
    EnvVar,
    /// `dagger` on `PATH`.
    Path,
    /// The SDK's cache (`$XDG_CACHE_HOME/dagger/dagger-<version>`), from an earlier download.
    Cache,
}

impl CliOrigin {
    fn describe(self) -> &'static str {
        match self {
            CliOrigin::EnvVar => "_EXPERIMENTAL_DAGGER_CLI_BIN",
            CliOrigin::Path => "dagger on PATH",
            CliOrigin::Cache => "cached SDK CLI",
        }
    }
}

/// One way to reach an engine, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An existing session (inside `dagger run`, or a nested exec).
    Session {
        /// `DAGGER_SESSION_PORT`.
        port: u16,
        /// `DAGGER_SESSION_TOKEN`.
        token: String,
    },
    /// A CLI to run `dagger session` with.
    Cli {
        /// The binary.
        path: PathBuf,
        /// Where it was found.
        origin: CliOrigin,
    },
    /// The SDK downloads the CLI from dl.dagger.io (needs network), then runs it.
    Provision,
}

/// The facts of the host that detection looks at, gathered once so detection itself is pure.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostEnv {
    /// `DAGGER_SESSION_PORT`.
    pub session_port: Option<String>,
    /// `DAGGER_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `_EXPERIMENTAL_DAGGER_CLI_BIN`.
    pub cli_bin: Option<PathBuf>,
    /// `_EXPERIMENTAL_DAGGER_RUNNER_HOST`.
    pub runner_host: Option<String>,
    /// The directories of `PATH`.
    pub path_dirs: Vec<PathBuf>,
    /// The SDK's cache directory for CLIs (`<cache>/dagger`), when one can be named.
    pub cache_dir: Option<PathBuf>,
}

impl HostEnv {
    /// The current process's environment.
    pub fn current() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        HostEnv {
            session_port: var("DAGGER_SESSION_PORT"),
            session_token: var("DAGGER_SESSION_TOKEN"),
            cli_bin: var("_EXPERIMENTAL_DAGGER_CLI_BIN").map(PathBuf::from),
            runner_host: var("_EXPERIMENTAL_DAGGER_RUNNER_HOST"),
            path_dirs: std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default(),
            cache_dir: sdk_cache_dir(),
        }
    }

    /// The first executable called `name` in `PATH`.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        self.path_dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
    }

    /// Where the SDK keeps (or would download) the CLI of [`CLI_VERSION`].
    pub fn cached_cli(&self) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(format!("dagger-{CLI_VERSION}")))
    }
}

/// The SDK's cache directory (its `Downloader::cache_dir`, without creating it): `$XDG_CACHE_HOME`
/// or the platform cache directory, then `dagger`.
fn sdk_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("dagger"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?);
    let base = if cfg!(target_os = "macos") { home.join("Library/Caches") } else { home.join(".cache") };
    Some(base.join("dagger"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// What detection found: the sources to try, in order, and what it looked at and did not find.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detection {
    /// Sources to try, in order.
    pub sources: Vec<Source>,
    /// Every place looked at that gave nothing, for the `ENGINE_UNAVAILABLE` message.
    pub missing: Vec<String>,
    /// The container runtime a CLI could provision an engine with, if any.
    pub runner: Option<String>,
}

/// Container runtimes the Dagger CLI can start an engine with.
const RUNNERS: &[&str] = &["docker", "podman", "nerdctl", "finch"];

/// Finds every way to an engine: the session env first, then CLIs (`_EXPERIMENTAL_DAGGER_CLI_BIN`,
/// `PATH`, the SDK cache), then, with `allow_provision`, the SDK's download.
pub(crate) fn detect(env: &HostEnv, allow_provision: bool) -> Detection {
    let mut d = Detection::default();
    match (&env.session_port, &env.session_token) {
        (Some(port), Some(token)) => match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => d.sources.push(Source::Session { port, token: token.clone() }),
            _ => d.missing.push(format!("DAGGER_SESSION_PORT={port:?} is not a port number")),
        },
        (Some(_), None) => d.missing.push("DAGGER_SESSION_PORT is set but DAGGER_SESSION_TOKEN is not".into()),
        (None, Some(_)) => d.missing.push("DAGGER_SESSION_TOKEN is set but DAGGER_SESSION_PORT is not".into()),
        (None, None) => d.missing.push("no session (DAGGER_SESSION_PORT/DAGGER_SESSION_TOKEN unset)".into()),
    }
    let push_cli = |d: &mut Detection, path: PathBuf, origin: CliOrigin| {
        let dup = d.sources.iter().any(|s| matches!(s, Source::Cli { path: p, .. } if *p == path));
        if !dup {
            d.sources.push(Source::Cli { path, origin });
        }
    };
    match &env.cli_bin {
        Some(p) if is_executable(p) => push_cli(&mut d, p.clone(), CliOrigin::EnvVar),
        Some(p) => d.missing.push(format!("_EXPERIMENTAL_DAGGER_CLI_BIN={} is not an executable file", p.display())),
        None => d.missing.push("_EXPERIMENTAL_DAGGER_CLI_BIN unset".into()),
    }
    match env.which("dagger") {
        Some(p) => push_cli(&mut d, p, CliOrigin::Path),
        None => d.missing.push("no dagger on PATH".into()),
    }
    match env.cached_cli() {
        Some(p) if is_executable(&p) => push_cli(&mut d, p, CliOrigin::Cache),
        Some(p) => d.missing.push(format!("no cached CLI at {}", p.display())),
        None => d.missing.push("no cache directory for a downloaded CLI (HOME unset)".into()),
    }
    d.runner = match &env.runner_host {
        Some(h) => Some(format!("_EXPERIMENTAL_DAGGER_RUNNER_HOST={h}")),
        None => RUNNERS.iter().find_map(|r| env.which(r).map(|p| p.display().to_string())),
    };
    if allow_provision {
        d.sources.push(Source::Provision);
    }
    d
}

/// Whether `auto` should try Dagger at all: a session is there, or a CLI is there together with a
/// container runtime (or runner host) to start an engine with. A download is never worth waiting
/// for in `auto`. The error says why not.
pub(crate) fn plausible(d: &Detection) -> Result<(), String> {
    let session = d.sources.iter().any(|s| matches!(s, Source::Session { .. }));
    let cli = d.sources.iter().any(|s| matches!(s, Source::Cli { .. }));
    if session || (cli && d.runner.is_some()) {
        return Ok(());
    }
    if cli {
        return Err(format!(
            "a dagger CLI is installed but no container runtime ({}) is on PATH to start an engine with",
            RUNNERS.join("/")
        ));
    }
    Err(d.missing.join("; "))
}

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

fn query_root(params: &ConnectParams) -> Query {
    // Config's builder cannot fail (every field has a default); Default is the same thing.
    let cfg = Config::default();
    Query {
        proc: None,
        selection: Selection::default(),
        graphql_client: Arc::new(DefaultGraphQLClient::new(params, &cfg)),
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
            conn: query_root(&params),
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
    let sdk_version = CLI_VERSION.trim_start_matches('v');
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
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "dagger_sandbox::dagger_cli", "{line}");
            let mut t = stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == STDERR_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    let mut params_tx = Some(params_tx);
    let mut out = BufReader::new(stdout).lines();
    let mut out_open = true;
    loop {
        tokio::select! {
            _ = &mut stop_rx => break,
            line = out.next_line(), if out_open => match line {
                Ok(Some(line)) => match serde_json::from_str::<ConnectParams>(&line) {
                    Ok(p) if params_tx.is_some() => {
                        if let Some(tx) = params_tx.take() {
                            let _ = tx.send(Ok(p));
                        }
                    }
                    _ => tracing::debug!(target: "dagger_sandbox::dagger_cli", "{line}"),
                },
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

/// The SDK's own provisioning: download the CLI of [`CLI_VERSION`] into its cache (checksum checked).
async fn provision(left: Duration) -> Result<PathBuf, String> {
    let task =
        tokio::spawn(
            async move { dagger_sdk::core::downloader::Downloader::new(CLI_VERSION.to_string()).get_cli().await },
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
                let conn = query_root(&params);
                match probe(&conn, l).await {
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
                Err(why) => tried.push(format!("SDK download of CLI {CLI_VERSION}: {why}")),
            },
        }
    }
    Err(tried)
}

async fn try_cli(path: &Path, left: Duration, tried: &mut Vec<String>) -> Option<Session> {
    let started = Instant::now();
    match start_cli(path, left).await {
        Ok(s) => match probe(&s.conn, left.saturating_sub(started.elapsed())).await {
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
    use std::os::unix::fs::PermissionsExt;

    fn exe(dir: &Path, name: &str, script: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn empty_env(tmp: &Path) -> HostEnv {
        HostEnv { path_dirs: vec![tmp.join("bin")], cache_dir: Some(tmp.join("cache/dagger")), ..Default::default() }
    }

    #[test]
    fn detection_order_is_session_then_env_cli_then_path_then_cache_then_download() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("cache/dagger")).unwrap();
        let on_path = exe(&tmp.path().join("bin"), "dagger", "#!/bin/sh\n");
        let custom = exe(tmp.path(), "my-dagger", "#!/bin/sh\n");
        let cached = exe(&tmp.path().join("cache/dagger"), &format!("dagger-{CLI_VERSION}"), "#!/bin/sh\n");
        let env = HostEnv {
            session_port: Some("4711".into()),
            session_token: Some("tok".into()),
            cli_bin: Some(custom.clone()),
            ..empty_env(tmp.path())
        };
        let d = detect(&env, true);
        assert_eq!(
            d.sources,
            [
                Source::Session { port: 4711, token: "tok".into() },
                Source::Cli { path: custom, origin: CliOrigin::EnvVar },
                Source::Cli { path: on_path, origin: CliOrigin::Path },
                Source::Cli { path: cached, origin: CliOrigin::Cache },
                Source::Provision,
            ]
        );
        assert!(detect(&env, false).sources.iter().all(|s| *s != Source::Provision));
    }

    #[test]
    fn nothing_found_lists_every_place_looked_and_auto_says_no() {
        let tmp = tempfile::tempdir().unwrap();
        let d = detect(&empty_env(tmp.path()), false);
        assert!(d.sources.is_empty());
        let why = plausible(&d).unwrap_err();
        for needle in ["DAGGER_SESSION_PORT", "_EXPERIMENTAL_DAGGER_CLI_BIN", "PATH", "cached CLI"] {
            assert!(why.contains(needle), "{needle} missing from {why:?}");
        }
    }

    #[test]
    fn auto_wants_a_session_or_a_cli_with_a_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        exe(&bin, "dagger", "#!/bin/sh\n");
        let env = empty_env(tmp.path());
        let why = plausible(&detect(&env, false)).unwrap_err();
        assert!(why.contains("no container runtime"), "{why}");
        exe(&bin, "podman", "#!/bin/sh\n");
        assert!(plausible(&detect(&env, false)).is_ok());
        let runner = HostEnv { runner_host: Some("tcp://10.0.0.1:1234".into()), ..empty_env(tmp.path()) };
        std::fs::remove_file(bin.join("podman")).unwrap();
        assert!(plausible(&detect(&runner, false)).is_ok());
        let session = HostEnv { session_port: Some("1".into()), session_token: Some("t".into()), ..Default::default() };
        assert!(plausible(&detect(&session, false)).is_ok());
    }

    #[test]
    fn bad_session_env_and_non_executable_cli_are_reported_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let not_exe = tmp.path().join("dagger-file");
        std::fs::write(&not_exe, "x").unwrap();
        let env = HostEnv {
            session_port: Some("not-a-port".into()),
            session_token: Some("t".into()),
            cli_bin: Some(not_exe),
            ..empty_env(tmp.path())
        };
        let d = detect(&env, false);
        assert!(d.sources.is_empty(), "{:?}", d.sources);
        let text = d.missing.join("; ");
        assert!(text.contains("not a port number") && text.contains("not an executable file"), "{text}");
        let half = HostEnv { session_port: Some("80".into()), ..empty_env(tmp.path()) };
        assert!(detect(&half, false).missing[0].contains("DAGGER_SESSION_TOKEN is not"));
    }

    #[tokio::test]
    async fn a_cli_that_never_connects_is_cut_off_by_the_bound_and_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let script = format!("#!/bin/sh\necho $$ > {}\necho provisioning >&2\nexec sleep 300\n", pidfile.display());
        let cli = exe(tmp.path(), "hang-dagger", &script);
        let started = Instant::now();
        let err = connect(&[Source::Cli { path: cli, origin: CliOrigin::EnvVar }], Duration::from_millis(700))
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
        let cli = exe(tmp.path(), "bad-dagger", "#!/bin/sh\necho 'Error: cannot reach docker' >&2\nexit 1\n");
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
}

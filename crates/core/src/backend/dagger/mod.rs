//! The dagger backend: the sandbox API on a Dagger engine (the 0.21 line, verified live with
//! v0.21.8) through dagger-sdk. A sandbox is an immutable container value; every mutation (an exec,
//! an upload, a delete) produces the next value, so a fork is a copy of one handle and costs
//! nothing in the engine.
//!
//! Files move through the session's file sync (`Host.file` in, `File.export`/`Directory.export`
//! out), which the CLI serves from this host: a remote engine works, a CLI on another machine does
//! not. Commands run in a small shell wrapper (`wrapper.rs`), so the image needs `sh`, `tar`,
//! `stat`, `env`, `rm`, `head`, `tail` and `wc` (busybox or coreutils have them all); `timeout`,
//! when present, also bounds each command in the engine.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dagger_sdk::errors::DaggerError;
use dagger_sdk::{Container, ContainerWithExecOpts, Id, Query, ReturnType};

use super::{BackendKind, DirEntry, Engine, EntryKind, ExecSpec, Isolation};
use crate::config::ResolvedConfig;
use crate::error::{Error, Result};
use crate::exec::RunningExec;
use crate::paths::SandboxPath;
use crate::stream::{ByteStream, FileReader};

mod client;
mod connect;
mod detect;
mod error;
mod exec;
#[cfg(test)]
mod fake_cli;
mod files;
mod secrets;
mod snapshot;
mod state;
mod version;
mod wrapper;

use connect::Session;
use detect::HostEnv;
use error::{deadline_error, join_error, query_error};
use secrets::SecretRules;
use state::Chain;

/// What the image offers for bounding a command inside the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutTool {
    /// `timeout -s KILL 0.5 cmd` works.
    Fractional,
    /// Only whole seconds work.
    WholeSeconds,
    /// No usable `timeout`: only the client side bounds commands.
    Missing,
}

/// What every sandbox of one create (and its forks) runs with.
struct Options {
    /// The bound on every engine call that is not a command (which has its own timeout): the
    /// sandbox's default `timeoutMs`.
    call_timeout: Duration,
    cache_execs: bool,
    rules: SecretRules,
    timeout_tool: TimeoutTool,
}

/// State shared between a sandbox's handle and the tasks that run its queries.
struct Inner {
    id: String,
    /// The shared engine session; `None` once closed (the last close ends the session).
    session: Mutex<Option<Arc<Session>>>,
    conn: Query,
    /// The container value; held for the whole of a mutation, so mutations apply one after another.
    chain: Arc<tokio::sync::Mutex<Chain<Container>>>,
    /// The latest value, for reads that need not wait for a running mutation.
    current: Mutex<Container>,
    opts: Arc<Options>,
    /// Secret ids by (name, value), so a value is sent to the engine once per session.
    secret_ids: Arc<Mutex<HashMap<(String, String), Id>>>,
}

/// One sandbox on a Dagger engine.
pub(crate) struct DaggerEngine {
    inner: Arc<Inner>,
}

/// Runs SDK calls in a task of their own, bounded by `deadline`: the SDK unwraps in a few places,
/// and a panic there must become an error, not take the caller down; and a stalled engine must not
/// hang a read, a stat or a fork forever. An abandoned query is cancelled (its HTTP request is
/// dropped, and the engine cancels a call whose last waiter leaves).
async fn sdk<T: Send + 'static>(
    sandbox: &str,
    op: &str,
    deadline: Duration,
    fut: impl Future<Output = std::result::Result<T, DaggerError>> + Send + 'static,
) -> Result<T> {
    let task = tokio::spawn(fut);
    // Whoever stops waiting (the deadline, or a caller that drops this future) ends the query.
    let _abort = AbortOnDrop(task.abort_handle());
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(query_error(sandbox, op, &e)),
        Ok(Err(j)) => Err(join_error(sandbox, op, j)),
        Err(_) => Err(deadline_error(sandbox, op, deadline)),
    }
}

/// Aborts a task when dropped: a detached query would otherwise run on with nobody waiting.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Exec options every command gets: a non-zero exit is a result. Sandboxed code gets no access to
/// the Dagger API: on the 0.21 line nesting is opt-in (`experimentalPrivilegedNesting`), and it
/// stays off.
fn exec_opts<'a>(stdin: Option<&'a str>, redirect_stdin: Option<&'a str>) -> ContainerWithExecOpts<'a> {
    // A literal, not the builder: the builder's build() is fallible, and the exact pin on the SDK
    // version means a new field shows up here as a compile error, not as a silent default.
    ContainerWithExecOpts {
        expand: None,
        expect: Some(ReturnType::Any),
        experimental_privileged_nesting: Some(false),
        insecure_root_capabilities: None,
        no_init: None,
        redirect_stderr: None,
        redirect_stdin,
        redirect_stdout: None,
        stdin,
        use_entrypoint: None,
    }
}

/// The result of one evaluated exec.
struct Ran {
    done: Container,
    code: i64,
    stdout: String,
    stderr: String,
}

/// Evaluates `argv` on `ctr` and fetches its exit code and output.
async fn run(ctr: Container, argv: Vec<String>) -> std::result::Result<Ran, DaggerError> {
    let done = ctr.with_exec_opts(argv, exec_opts(None, None)).sync().await?;
    let (stdout, stderr, code) = tokio::try_join!(done.stdout(), done.stderr(), done.exit_code())?;
    Ok(Ran { done, code: code as i64, stdout, stderr })
}

/// Runs a short shell script with `args` ($0, $1, ...) on `ctr`.
fn script_argv(script: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// Run at create: makes the workdir, and reports the tools the backend needs that are missing and
/// what `timeout` can do. Only GNU `timeout` counts as fractional: busybox accepts `0.5` and `1.9`
/// but kills after whole seconds (seen live: both after 1.0 s), which made a command killed at its
/// limit look like one that exited 137 early.
const PROBE: &str = "mkdir -p -- \"$0\" || exit 3; m=''; \
    for t in tar stat env rm head tail wc; do command -v \"$t\" >/dev/null 2>&1 || m=\"$m $t\"; done; \
    echo \"missing:$m\"; \
    if timeout --version 2>&1 | grep -q GNU && timeout -s KILL 0.5 true >/dev/null 2>&1; then echo timeout:fractional; \
    elif timeout -s KILL 1 true >/dev/null 2>&1; then echo timeout:whole; else echo timeout:none; fi";

/// What the probe found: missing tools and the timeout tool.
fn parse_probe(out: &str) -> (Vec<String>, TimeoutTool) {
    let mut missing = Vec::new();
    let mut tool = TimeoutTool::Missing;
    for line in out.lines() {
        if let Some(m) = line.strip_prefix("missing:") {
            missing.extend(m.split_whitespace().map(String::from));
        } else if let Some(t) = line.strip_prefix("timeout:") {
            tool = match t.trim() {
                "fractional" => TimeoutTool::Fractional,
                "whole" => TimeoutTool::WholeSeconds,
                _ => TimeoutTool::Missing,
            };
        }
    }
    (missing, tool)
}

/// How `backend: "dagger"` and `auto` reach an engine, with the `ENGINE_UNAVAILABLE` they give.
pub(crate) async fn connect_session(bound: Duration, auto: bool) -> Result<Arc<Session>> {
    let env = HostEnv::current();
    let detection = detect::detect(&env, !auto);
    let backend = if auto { "auto" } else { "dagger" };
    let fail = |tried: Vec<String>| Error::EngineUnavailable {
        backend: backend.into(),
        tried: format!("dagger: {}", tried.join("; ")),
        hint: format!(
            "Install the Dagger CLI {v} (https://docs.dagger.io/install) and make sure Docker or Podman runs so it \
             can start an engine, or run inside `dagger run`, or point _EXPERIMENTAL_DAGGER_CLI_BIN at a CLI; or \
             use backend \"docker\" or \"auto\". See docs/DAGGER.md#troubleshooting.",
            v = version::SDK_VERSION
        ),
    };
    if detection.sources.is_empty() {
        return Err(fail(detection.missing));
    }
    connect::shared(&detection.sources, bound).await.map_err(|mut tried| {
        tried.extend(detection.missing.iter().cloned());
        fail(tried)
    })
}

/// Whether `auto` should try Dagger here; the error says why not (all checks are local and fast).
pub(crate) fn auto_plausible() -> std::result::Result<(), String> {
    detect::plausible(&detect::detect(&HostEnv::current(), false))
}

impl DaggerEngine {
    /// Starts sandbox `id` from the config's image on `session`.
    pub(crate) async fn create(session: Arc<Session>, cfg: &ResolvedConfig, id: &str) -> Result<Self> {
        let base = session.conn.container().from(cfg.image.clone());
        Self::create_on(session, cfg, id, base).await
    }

    /// Starts sandbox `id` on the container value `base` (an image, or a snapshot's value).
    async fn create_on(session: Arc<Session>, cfg: &ResolvedConfig, id: &str, mut base: Container) -> Result<Self> {
        let rules = SecretRules::new(&cfg.secret_patterns)?;
        let conn = session.conn.clone();
        let image = cfg.image.clone();
        for kind in &cfg.caches {
            // The engine's cache volumes: shared by every sandbox of this user, kept by the engine.
            base = base.with_mounted_cache(kind.mount_path(), conn.cache_volume(kind.volume_name()));
        }
        let argv = script_argv(PROBE, &[cfg.workdir.as_str()]);
        let ran = sdk(id, &format!("starting from image {image}"), cfg.timeout, run(base, argv)).await.map_err(
            |e| match e {
                Error::Engine { sandbox, op, message } => Error::Engine {
                    sandbox,
                    op,
                    message: format!(
                        "{message}. The engine could not pull or start the image; check its name and that the engine \
                     can reach its registry"
                    ),
                },
                e => e,
            },
        )?;
        if ran.code != 0 {
            return Err(Error::InvalidArgument(format!(
                "image {image} cannot host a dagger sandbox: creating the workdir {} failed (exit {}): {}",
                cfg.workdir,
                ran.code,
                ran.stderr.trim()
            )));
        }
        let (missing, timeout_tool) = parse_probe(&ran.stdout);
        if !missing.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "image {image} lacks {} that the dagger backend needs (sh, tar, stat, env, rm, head, tail, wc; \
                 busybox or coreutils provide them)",
                missing.join(", ")
            )));
        }
        if timeout_tool == TimeoutTool::Missing {
            tracing::warn!(
                sandbox = id,
                image,
                "the image has no usable `timeout`: commands are bounded client-side only"
            );
        }
        tracing::debug!(sandbox = id, session = %session.describe, "dagger sandbox ready");
        let opts = Options { call_timeout: cfg.timeout, cache_execs: cfg.cache_execs, rules, timeout_tool };
        Ok(Self::from_parts(id, session, conn, ran.done, Arc::new(opts), Arc::default()))
    }

    fn from_parts(
        id: &str,
        session: Arc<Session>,
        conn: Query,
        synced: Container,
        opts: Arc<Options>,
        secret_ids: Arc<Mutex<HashMap<(String, String), Id>>>,
    ) -> Self {
        DaggerEngine {
            inner: Arc::new(Inner {
                id: id.to_string(),
                session: Mutex::new(Some(session)),
                conn,
                chain: Arc::new(tokio::sync::Mutex::new(Chain::new(synced.clone()))),
                current: Mutex::new(synced),
                opts,
                secret_ids,
            }),
        }
    }
}

impl Inner {
    fn current(&self) -> Container {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, c: Container) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    fn closed(&self) -> bool {
        self.session.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed() {
            return Err(Error::Closed { sandbox: self.id.clone() });
        }
        Ok(())
    }

    /// The id of a secret holding `value`, sent to the engine the first time it is needed.
    async fn secret_id(&self, name: &str, value: &str) -> Result<Id> {
        let key = (name.to_string(), value.to_string());
        if let Some(id) = self.secret_ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(id.clone());
        }
        // A unique name per value: the engine keys secrets by name within a session.
        let secret = self.conn.set_secret(format!("dagger-sandbox-{name}-{}", uuid::Uuid::new_v4().simple()), value);
        let id =
            sdk(
                &self.id,
                &format!("passing the secret {name}"),
                self.opts.call_timeout,
                async move { secret.id().await },
            )
            .await?;
        self.secret_ids.lock().unwrap_or_else(|p| p.into_inner()).insert(key, id.clone());
        Ok(id)
    }

    /// A file in the engine with exactly the bytes of `data`, sent through the session's file sync:
    /// the stream goes to a private host file (never gathered in memory), which the engine reads
    /// with `Host.file`. GraphQL strings cannot carry arbitrary bytes, and inlining them (base64 in
    /// the query text) held every upload in memory several times over. The returned guard keeps
    /// the host file until the engine has used it (drop it after the sync that consumes the id).
    async fn host_file_id(&self, name: &str, mut data: ByteStream) -> Result<(Id, tempfile::TempDir)> {
        let op = "sending file contents";
        let staging = |e| Error::io(format!("sandbox {}: staging file contents on the host", self.id), e);
        let dir = tokio::task::spawn_blocking(|| tempfile::Builder::new().prefix("dagger-sandbox-stage-").tempdir())
            .await
            .map_err(|e| join_error(&self.id, op, e))?
            .map_err(staging)?;
        let path = dir.path().join(name);
        let mut file = tokio::fs::File::create(&path).await.map_err(staging)?;
        tokio::io::copy(&mut data, &mut file)
            .await
            .map_err(|e| Error::from_stream(format!("sandbox {}: staging file contents on the host", self.id), e))?;
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(staging)?;
        drop(file);
        // The engine caches host paths for the whole session, and a reused path would serve the
        // old bytes (seen live): the path is unique, and `noCache` says so to the engine too.
        let file = self
            .conn
            .host()
            .file_opts(path.to_string_lossy().into_owned(), dagger_sdk::HostFileOpts { no_cache: Some(true) });
        let id = sdk(&self.id, op, self.opts.call_timeout, async move { file.id().await }).await?;
        Ok((id, dir))
    }

    /// Runs a read-only helper script on the latest value (its result is not kept).
    async fn helper(&self, op: &str, script: &str, arg: &str) -> Result<Ran> {
        self.check_open()?;
        sdk(&self.id, op, self.opts.call_timeout, run(self.current(), script_argv(script, &[arg]))).await
    }
}

#[async_trait]
impl Engine for DaggerEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::Dagger
    }

    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    fn resource_id(&self) -> String {
        // Dagger has no long-lived container to name: the state is a value held by this client.
        format!("dagger:{}", self.inner.id)
    }

    async fn start_exec(&self, spec: ExecSpec) -> Result<Box<dyn RunningExec>> {
        self.inner.check_open()?;
        Ok(Box::new(exec::DaggerExec::start(self.inner.clone(), spec)))
    }

    async fn upload_tar(&self, tar: ByteStream) -> Result<()> {
        files::upload(&self.inner, tar).await
    }

    async fn download_tar(&self, path: &SandboxPath) -> Result<ByteStream> {
        files::download(&self.inner, path).await
    }

    async fn read_file(&self, path: &SandboxPath, limit: u64) -> Result<FileReader> {
        files::read_file(&self.inner, path, limit).await
    }

    async fn stat(&self, path: &SandboxPath) -> Result<Option<EntryKind>> {
        files::stat(&self.inner, path).await
    }

    async fn remove(&self, path: &SandboxPath) -> Result<()> {
        files::remove(&self.inner, path).await
    }

    async fn list_dir(&self, path: &SandboxPath) -> Result<Vec<DirEntry>> {
        files::list_dir(&self.inner, path).await
    }

    async fn fork(&self, new_id: &str) -> Result<Box<dyn Engine>> {
        let inner = &self.inner;
        let session = inner.session.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(session) = session else {
            return Err(Error::Closed { sandbox: inner.id.clone() });
        };
        // Under the mutation lock, synced: the fork starts from a short, settled chain.
        let mut chain = inner.chain.clone().lock_owned().await;
        let id = inner.id.clone();
        let settled = sdk(&id, "forking", inner.opts.call_timeout, async move {
            chain.checkpoint().await?;
            Ok(chain.value().clone())
        })
        .await?;
        Ok(Box::new(Self::from_parts(
            new_id,
            session,
            inner.conn.clone(),
            settled,
            inner.opts.clone(),
            inner.secret_ids.clone(),
        )))
    }

    async fn snapshot(&self, record: crate::snapshot::Record) -> Result<crate::snapshot::Snapshot> {
        self.take_snapshot(record).await
    }

    async fn close(&self) -> Result<()> {
        // The engine holds nothing of ours beyond cache entries its GC manages; releasing the
        // session handle is all there is, and the last one closes the session (and its CLI).
        let session = self.inner.session.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(session);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reports_missing_tools_and_the_timeout_flavour() {
        assert_eq!(parse_probe("missing:\ntimeout:fractional\n"), (vec![], TimeoutTool::Fractional));
        assert_eq!(
            parse_probe("missing: base64 stat\ntimeout:none\n"),
            (vec!["base64".to_string(), "stat".to_string()], TimeoutTool::Missing)
        );
        assert_eq!(parse_probe("missing:\ntimeout:whole\n").1, TimeoutTool::WholeSeconds);
        assert_eq!(parse_probe("").1, TimeoutTool::Missing, "no answer means no in-engine timeout");
    }

    #[test]
    fn every_exec_disables_nesting_and_accepts_any_exit() {
        let o = exec_opts(Some("in"), None);
        assert_eq!(o.experimental_privileged_nesting, Some(false));
        assert_eq!(o.expect, Some(ReturnType::Any));
        assert_eq!(o.stdin, Some("in"));
        assert_eq!(o.insecure_root_capabilities, None);
    }

    #[tokio::test]
    async fn a_stalled_engine_call_ends_at_its_deadline() {
        // Accepts connections (the kernel's backlog) but never answers: a stalled session.
        let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = stalled.local_addr().unwrap().port();
        let q = Query {
            proc: None,
            selection: dagger_sdk::Selection::default(),
            graphql_client: client::SessionClient::new(port, "t").unwrap().into_dyn(),
        };
        let started = std::time::Instant::now();
        let err = sdk("sbx-1", "reading a file", Duration::from_millis(300), async move { q.version().await })
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(err.code(), crate::ErrorCode::EngineError);
        let text = err.to_string();
        assert!(text.contains("did not answer within 300 ms") && text.contains("reading a file"), "{text}");
        drop(stalled);
    }

    #[tokio::test]
    async fn a_dropped_engine_call_ends_its_query() {
        // The query's task must not outlive its caller: dropping the call drops the query.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let call = sdk("sbx-1", "exporting", Duration::from_secs(60), async move {
            let _tx = tx; // dropped when this task ends
            std::future::pending::<std::result::Result<(), DaggerError>>().await
        });
        let handle = tokio::spawn(call);
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.abort();
        let ended = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(matches!(ended, Ok(Err(_))), "the query's task kept running after its caller left");
    }

    #[test]
    fn scripts_take_paths_as_arguments_never_as_code() {
        let argv = script_argv("cat -- \"$0\"", &["/workspace/a b; rm -rf /"]);
        assert_eq!(argv, ["sh", "-c", "cat -- \"$0\"", "/workspace/a b; rm -rf /"]);
    }
}

//! Commands on Dagger. An exec is one query that returns when the command has ended, so output
//! arrives all at once; the query runs in a task that a kill aborts (the engine cancels a call
//! whose last waiter leaves). Inside the engine the command runs under `timeout` a little before
//! the caller's deadline, so a command that runs too long is stopped even if the cancel never
//! reaches the engine, and its partial output and files are still returned and kept.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use dagger_sdk::core::gql_client::GraphQlExtension;
use dagger_sdk::core::graphql_client::GraphQLError;
use dagger_sdk::errors::DaggerError;
use futures_util::future::BoxFuture;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

use super::state::Chain;
use super::{exec_opts, join_error, query_error, Inner, TimeoutTool};
use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

/// The variable whose changing value makes every exec a new call to the engine's cache.
pub(super) const NONCE_VAR: &str = "DAGGER_SANDBOX_EXEC";

/// Exit code and stderr of the prelude when the working directory is missing.
const NO_CWD_CODE: i64 = 212;
const NO_CWD_MARKER: &str = "__DAGGER_SANDBOX_NO_CWD__";

/// Changes to the working directory (refusing a missing one, as the other backends do, rather than
/// letting the engine create it), then runs the command in a fresh shell, as `sh -c` does elsewhere.
const PRELUDE: &str = "cd -- \"$0\" 2>/dev/null || { printf %s __DAGGER_SANDBOX_NO_CWD__ >&2; exit 212; }; \
    exec sh -c \"$1\"";

/// Where [`STATUS_WRAPPER`] leaves the command's real exit status; removed from the state after
/// each exec.
pub(super) const STATUS_FILE: &str = "/tmp/.dagger-sandbox-exit";

/// Runs the command (`"$@"`), writes its real exit status to the file `$0` and exits 0. Even with
/// `expect: ANY` the engine accepts only 0-127 and 192-255: a command that exits 128-191 (death by
/// signal: 137 for a kill or an OOM, 139 for a segfault, `exit 130`) would come back as an engine
/// error, its file changes dropped and its output trimmed to the last 100 KiB. When the file cannot
/// be written (no writable /tmp), the status is passed on as the exit code, as before.
///
/// A shell reports a job killed by a signal ("Killed") on its own stderr, which is the command's
/// too; that line is not the command's output. So the command runs as a background job whose
/// `wait` has its stderr discarded (busybox and dash report it there), with stdin handed over
/// explicitly through fd 3 (an asynchronous list would otherwise read /dev/null).
const STATUS_WRAPPER: &str =
    "exec 3<&0; \"$@\" <&3 3<&- & wait $! 2>/dev/null; s=$?; { printf '%s' \"$s\" > \"$0\"; } 2>/dev/null && exit 0; exit $s";

/// The status [`STATUS_WRAPPER`] wrote, if it is one.
pub(super) fn parse_status(text: &str) -> Option<i64> {
    let t = text.trim();
    (!t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
}

/// When the engine stops the command: a little before the caller's deadline, so the result (with
/// the partial output and the files) can travel back in time. A `timeout` that only counts whole
/// seconds (busybox) gets the limit rounded up instead, at least 1 s: the caller's deadline then
/// comes first, and its kill waits for the engine's result (see [`kill_wait`]).
pub(super) fn in_engine_limit(timeout: Duration, tool: TimeoutTool) -> Option<Duration> {
    let margin = (timeout / 4).min(Duration::from_millis(500));
    let limit = timeout.saturating_sub(margin);
    match tool {
        TimeoutTool::Missing => None,
        TimeoutTool::Fractional => Some(limit.max(Duration::from_millis(10))),
        TimeoutTool::WholeSeconds => {
            Some(Duration::from_secs((limit.as_secs() + u64::from(limit.subsec_nanos() > 0)).max(1)))
        }
    }
}

/// `limit` as `timeout` takes it.
pub(super) fn format_limit(limit: Duration, tool: TimeoutTool) -> String {
    match tool {
        TimeoutTool::Fractional => format!("{}.{:03}", limit.as_secs(), limit.subsec_millis()),
        _ => limit.as_secs().to_string(),
    }
}

/// The argv of one exec: `sh -c STATUS_WRAPPER STATUS_FILE [timeout -s KILL secs] env K=V... [NONCE]
/// sh -c PRELUDE cwd cmd`.
/// Plain variables travel on the command line, so they never enter the container's config and a
/// per-call variable cannot outlive its call.
pub(super) fn exec_argv(
    command: &str,
    cwd: &str,
    plain_env: &[(String, String)],
    nonce: Option<&str>,
    limit: Option<String>,
) -> Vec<String> {
    let mut argv: Vec<String> = vec!["sh".into(), "-c".into(), STATUS_WRAPPER.into(), STATUS_FILE.into()];
    if let Some(secs) = limit {
        argv.extend(["timeout".into(), "-s".into(), "KILL".into(), secs]);
    }
    argv.push("env".into());
    for (k, v) in plain_env {
        argv.push(format!("{k}={v}"));
    }
    if let Some(n) = nonce {
        argv.push(format!("{NONCE_VAR}={n}"));
    }
    argv.extend(["sh".into(), "-c".into(), PRELUDE.into(), cwd.into(), command.into()]);
    argv
}

/// What one exec produced.
#[derive(Debug)]
pub(super) struct ExecDone {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
    /// The in-engine `timeout` stopped it: the caller's deadline decides, with this output.
    pub timed_out: bool,
}

/// Whether an exit looks like the in-engine `timeout` killed the command.
pub(super) fn killed_by_limit(code: i64, elapsed: Duration, limit: Option<Duration>) -> bool {
    match limit {
        Some(l) => matches!(code, 124 | 137) && elapsed + Duration::from_millis(50) >= l,
        None => false,
    }
}

/// A command that failed as an engine error although it produced an exit code (the engine reports
/// some signal deaths that way even with `expect: ANY`): its code and output.
pub(super) fn exit_from_error(e: &DaggerError) -> Option<(i64, String, String)> {
    let DaggerError::Query(GraphQLError::DomainError { message, fields }) = e else {
        return None;
    };
    for f in fields {
        if let Some(GraphQlExtension::ExecError { exit_code, stdout, stderr, .. }) = &f.extensions {
            return Some((i64::from(*exit_code), stdout.clone(), stderr.clone()));
        }
    }
    let rest = &message[message.find("exit code: ")? + "exit code: ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((digits.parse().ok()?, String::new(), String::new()))
}

/// Runs one exec to its end and moves the sandbox to the state it left.
async fn run_exec(inner: Arc<Inner>, spec: ExecSpec) -> Result<ExecDone> {
    let sandbox = inner.id.clone();
    let op = "running a command";
    let qe = |e: DaggerError| query_error(&sandbox, op, &e);
    let mut guard = inner.chain.clone().lock_owned().await;
    inner.check_open()?;
    // Built on a copy: the shared chain only changes once the exec has succeeded, so an aborted
    // call leaves no secret or staged stdin attached to the sandbox.
    let mut next: Chain<dagger_sdk::Container> = (*guard).clone();
    let split = inner.opts.rules.split(&spec.env);
    for (k, v) in &split.secret {
        let id = inner.secret_id(k, v).await?;
        next.apply(1, |c| c.with_secret_variable(k.clone(), id)).await.map_err(qe)?;
    }
    let mut _stdin_on_host = None;
    let (stdin_text, stdin_file) = match spec.stdin {
        None => (None, None),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Some(text), None),
            // GraphQL strings cannot carry arbitrary bytes: stage them as a file and redirect.
            Err(e) => {
                let path = format!("/.dagger-sandbox-stdin-{}", uuid::Uuid::new_v4().simple());
                let (id, guard) = inner.host_file_id("stdin", e.into_bytes()).await?;
                _stdin_on_host = Some(guard);
                next.apply(1, |c| c.with_file(path.clone(), id)).await.map_err(qe)?;
                (None, Some(path))
            }
        },
    };
    let tool = inner.opts.timeout_tool;
    let limit = in_engine_limit(spec.timeout, tool);
    let nonce = (!inner.opts.cache_execs).then(|| uuid::Uuid::new_v4().simple().to_string());
    let argv = exec_argv(
        &spec.command,
        spec.cwd.as_str(),
        &split.plain,
        nonce.as_deref(),
        limit.map(|l| format_limit(l, tool)),
    );
    let started = Instant::now();
    let pending = next.value().with_exec_opts(argv, exec_opts(stdin_text.as_deref(), stdin_file.as_deref()));
    let evaluated = pending.sync().await;
    let elapsed = started.elapsed();
    let done = match evaluated {
        Ok(done) => done,
        Err(e) => {
            // The command ran but the engine calls its end an error: a result, state unchanged.
            return match exit_from_error(&e) {
                Some((code, stdout, stderr)) => {
                    Ok(ExecDone { code, stdout, stderr, timed_out: killed_by_limit(code, elapsed, limit) })
                }
                None => Err(qe(e)),
            };
        }
    };
    let status = done.file(STATUS_FILE);
    let (outputs, status) =
        tokio::join!(async { tokio::try_join!(done.stdout(), done.stderr(), done.exit_code()) }, status.contents());
    let (stdout, stderr, code) = outputs.map_err(qe)?;
    // The wrapper's file has the real status; without it (no writable /tmp) the exit code is it.
    let code = status.ok().as_deref().and_then(parse_status).unwrap_or(code as i64);
    if code == NO_CWD_CODE && stderr == NO_CWD_MARKER {
        return Err(Error::not_found(&sandbox, "working directory", spec.cwd.to_string()));
    }
    // Keep the exec's filesystem, without this call's secrets, staged stdin or status file.
    let mut after = Chain::new(done);
    after.apply(1, |c| c.without_file(STATUS_FILE)).await.map_err(qe)?;
    for (k, _) in &split.secret {
        after.apply(1, |c| c.without_secret_variable(k.clone())).await.map_err(qe)?;
    }
    if let Some(p) = &stdin_file {
        after.apply(1, |c| c.without_file(p.clone())).await.map_err(qe)?;
    }
    inner.publish(after.value().clone());
    *guard = after;
    Ok(ExecDone { code, stdout, stderr, timed_out: killed_by_limit(code, elapsed, limit) })
}

/// A command running on Dagger, as the exec loop sees it.
pub(super) struct DaggerExec {
    sandbox: String,
    task: Option<JoinHandle<Result<ExecDone>>>,
    abort: AbortHandle,
    killed: CancellationToken,
    queue: VecDeque<OutputChunk>,
    code: Option<i64>,
    /// The engine stopped it at its limit: output stays "open" until the caller's deadline kills
    /// it, so the call ends as `TIMEOUT` with this output, never as a plain exit.
    hold: bool,
    ended: bool,
    /// When the engine stops the command at its limit; see [`kill_wait`].
    engine_stop_at: Option<Instant>,
}

/// How long the engine's result of a command it stopped may take to come back: the container's
/// start (before the limit's clock runs) and the way back.
const ENGINE_RESULT_SLACK: Duration = Duration::from_secs(3);

/// How far ahead the in-engine stop may be for a kill to wait for it. With the slack this stays
/// within drive()'s grace after a kill (5 s).
const ENGINE_STOP_AHEAD: Duration = Duration::from_secs(1);

/// How long a kill at `now` waits for the engine's own result before abandoning the query: a
/// timed-out command's partial output and files come only with that result, so the kill waits
/// when the in-engine stop (`engine_stop_at`) is due within [`ENGINE_STOP_AHEAD`] (a timeout), and
/// not at all when it is further away (a cancel long before the limit ends the call at once).
pub(super) fn kill_wait(engine_stop_at: Option<Instant>, now: Instant) -> Duration {
    match engine_stop_at {
        Some(at) if at <= now + ENGINE_STOP_AHEAD => (at + ENGINE_RESULT_SLACK).saturating_duration_since(now),
        _ => Duration::ZERO,
    }
}

impl DaggerExec {
    /// Starts the exec's query in a task of its own.
    pub(super) fn start(inner: Arc<Inner>, spec: ExecSpec) -> Self {
        let sandbox = inner.id.clone();
        let engine_stop_at = in_engine_limit(spec.timeout, inner.opts.timeout_tool).map(|l| Instant::now() + l);
        let task = tokio::spawn(run_exec(inner, spec));
        DaggerExec {
            engine_stop_at,
            sandbox,
            abort: task.abort_handle(),
            task: Some(task),
            killed: CancellationToken::new(),
            queue: VecDeque::new(),
            code: None,
            hold: false,
            ended: false,
        }
    }
}

#[async_trait]
impl RunningExec for DaggerExec {
    async fn next_chunk(&mut self) -> Option<Result<OutputChunk>> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Some(Ok(c));
            }
            if self.ended {
                if self.hold {
                    self.killed.cancelled().await;
                }
                return None;
            }
            let Some(task) = self.task.as_mut() else {
                self.ended = true;
                continue;
            };
            // A kill abandons the query itself, after waiting for the engine's result if it is due.
            let joined = task.await;
            self.task = None;
            self.ended = true;
            let killed = self.killed.is_cancelled();
            match joined {
                Ok(Ok(done)) => {
                    for (stream, text) in [(OutputStream::Stdout, done.stdout), (OutputStream::Stderr, done.stderr)] {
                        if !text.is_empty() {
                            self.queue.push_back(OutputChunk { stream, data: Bytes::from(text) });
                        }
                    }
                    self.code = Some(done.code);
                    self.hold = done.timed_out;
                }
                // After a kill, an abandoned or failed query just ends the output.
                Ok(Err(_)) | Err(_) if killed => {}
                Ok(Err(e)) => return Some(Err(e)),
                Err(e) => return Some(Err(join_error(&self.sandbox, "running a command", e))),
            }
        }
    }

    fn kill(&self) -> BoxFuture<'static, Result<()>> {
        let (killed, abort) = (self.killed.clone(), self.abort.clone());
        let wait = kill_wait(self.engine_stop_at, Instant::now());
        Box::pin(async move {
            killed.cancel();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            abort.abort();
            Ok(())
        })
    }

    async fn exit_code(&mut self) -> Result<i64> {
        match self.code {
            Some(c) if !self.killed.is_cancelled() => Ok(c),
            _ => Err(Error::engine(&self.sandbox, "running a command", "the command was stopped before it exited")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn argv_passes_env_cwd_and_command_as_separate_arguments() {
        let argv =
            exec_argv("echo \"$A\" > out", "/workspace/my dir", &env(&[("A", "x y"), ("B", "")]), Some("n1"), None);
        assert_eq!(&argv[..4], ["sh", "-c", STATUS_WRAPPER, STATUS_FILE]);
        assert_eq!(
            argv[4..],
            [
                "env",
                "A=x y",
                "B=",
                "DAGGER_SANDBOX_EXEC=n1",
                "sh",
                "-c",
                PRELUDE,
                "/workspace/my dir",
                "echo \"$A\" > out"
            ]
        );
    }

    #[test]
    fn argv_with_a_limit_wraps_in_timeout_and_without_a_nonce_is_stable() {
        let a = exec_argv("true", "/w", &[], None, Some("1.500".into()));
        assert_eq!(&a[..8], ["sh", "-c", STATUS_WRAPPER, STATUS_FILE, "timeout", "-s", "KILL", "1.500"]);
        assert_eq!(a[8], "env");
        // With caching opted in, the same call on the same state is the same query.
        assert_eq!(a, exec_argv("true", "/w", &[], None, Some("1.500".into())));
        // By default every call differs, so the engine runs it again.
        assert_ne!(exec_argv("true", "/w", &[], Some("1"), None), exec_argv("true", "/w", &[], Some("2"), None));
    }

    #[test]
    fn the_engine_stops_a_command_just_before_the_callers_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(in_engine_limit(ms(800), TimeoutTool::Fractional), Some(ms(600)));
        assert_eq!(in_engine_limit(Duration::from_secs(600), TimeoutTool::Fractional), Some(ms(599_500)));
        // Whole seconds are rounded up (busybox kills 1.9 after 1 s), never below 1 s.
        assert_eq!(
            in_engine_limit(Duration::from_secs(600), TimeoutTool::WholeSeconds),
            Some(Duration::from_secs(600))
        );
        assert_eq!(in_engine_limit(Duration::from_secs(2), TimeoutTool::WholeSeconds), Some(Duration::from_secs(2)));
        assert_eq!(in_engine_limit(ms(800), TimeoutTool::WholeSeconds), Some(Duration::from_secs(1)));
        assert_eq!(in_engine_limit(ms(900), TimeoutTool::Missing), None);
        assert_eq!(format_limit(ms(599_500), TimeoutTool::Fractional), "599.500");
        assert_eq!(format_limit(ms(2_000), TimeoutTool::WholeSeconds), "2");
        for t in [1u64, 10, 100, 1_000, 600_000] {
            let limit = in_engine_limit(ms(t), TimeoutTool::Fractional).unwrap();
            assert!(limit < ms(t) || t < 20, "{t}: {limit:?}");
        }
    }

    /// Runs the wrapper as the engine does (`sh -c WRAPPER FILE cmd...`) with the host's `sh`,
    /// `stdin` on its standard input; the exec's exit code, the recorded status and the output.
    fn wrapped_io(file: &std::path::Path, script: &str, stdin: &str) -> (i32, Option<i64>, String, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", STATUS_WRAPPER])
            .arg(file)
            .args(["sh", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let status = std::fs::read_to_string(file).ok().as_deref().and_then(parse_status);
        let _ = std::fs::remove_file(file);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), status, text(out.stdout), text(out.stderr))
    }

    fn wrapped(file: &std::path::Path, script: &str) -> (i32, Option<i64>) {
        let (code, status, _, _) = wrapped_io(file, script, "");
        (code, status)
    }

    #[test]
    fn the_status_wrapper_turns_any_exit_and_signal_death_into_a_result() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("exit");
        // The engine refuses 128-191 as an exec's own exit; through the wrapper the exec exits 0
        // and the real status is in the file.
        for (script, want) in [
            ("true", 0),
            ("exit 3", 3),
            ("exit 130", 130),
            ("kill -9 $$", 137),
            ("kill -SEGV $$", 139),
            ("exit 255", 255),
        ] {
            assert_eq!(wrapped(&f, script), (0, Some(want)), "{script}");
        }
        // No writable place for the file: the status is the exit code, as without the wrapper.
        let unwritable = tmp.path().join("missing-dir/exit");
        assert_eq!(wrapped(&unwritable, "exit 7"), (7, None));
        // The command's stdin reaches it, and a signal death adds nothing to its output.
        let (code, status, out, err) = wrapped_io(&f, "read l; echo got:$l; echo e >&2; kill -9 $$", "hello\n");
        assert_eq!((code, status, out.as_str(), err.as_str()), (0, Some(137), "got:hello\n", "e\n"));
        assert_eq!(parse_status("137"), Some(137));
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("12345"), None);
        assert_eq!(parse_status("-1"), None);
    }

    #[test]
    fn a_kill_waits_for_the_engines_result_only_when_it_is_due() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // A timeout: the engine stops the command now or within a second; its result follows.
        assert_eq!(kill_wait(Some(now), now), ENGINE_RESULT_SLACK);
        assert_eq!(
            kill_wait(Some(now + Duration::from_millis(200)), now),
            ENGINE_RESULT_SLACK + Duration::from_millis(200)
        );
        // A cancel long before the in-engine limit: abandon at once.
        assert_eq!(kill_wait(Some(now + s(600)), now), Duration::ZERO);
        // No in-engine limit (no `timeout` in the image), or its result is long overdue.
        assert_eq!(kill_wait(None, now), Duration::ZERO);
        assert_eq!(kill_wait(Some(now), now + s(10)), Duration::ZERO);
        assert!(ENGINE_RESULT_SLACK + ENGINE_STOP_AHEAD < s(5), "must fit in drive()'s kill grace");
    }

    #[test]
    fn only_a_kill_at_the_limit_counts_as_the_limit() {
        let l = Some(Duration::from_millis(600));
        assert!(killed_by_limit(137, Duration::from_millis(610), l));
        assert!(killed_by_limit(124, Duration::from_millis(600), l));
        assert!(!killed_by_limit(137, Duration::from_millis(100), l), "an early kill is the command's own");
        assert!(!killed_by_limit(1, Duration::from_secs(5), l));
        assert!(!killed_by_limit(137, Duration::from_secs(5), None));
    }

    #[test]
    fn exit_codes_are_recovered_from_exec_errors() {
        use dagger_sdk::core::gql_client::GraphQLErrorMessage;
        let with_ext = DaggerError::Query(GraphQLError::DomainError {
            message: "process \"sh -c ...\" did not complete successfully: exit code: 153".into(),
            fields: vec![GraphQLErrorMessage {
                message: "m".into(),
                locations: None,
                extensions: Some(GraphQlExtension::ExecError {
                    cmd: vec![],
                    exit_code: 153,
                    stderr: "File size limit exceeded".into(),
                    stdout: "partial".into(),
                }),
                path: None,
            }],
        });
        assert_eq!(exit_from_error(&with_ext), Some((153, "partial".into(), "File size limit exceeded".into())));
        let text_only = DaggerError::Query(GraphQLError::DomainError {
            message: "process did not complete successfully: exit code: 137".into(),
            fields: vec![],
        });
        assert_eq!(exit_from_error(&text_only), Some((137, String::new(), String::new())));
        let other = DaggerError::Query(GraphQLError::DomainError { message: "no such file".into(), fields: vec![] });
        assert_eq!(exit_from_error(&other), None);
        assert_eq!(exit_from_error(&DaggerError::Query(GraphQLError::HttpError("x".into()))), None);
    }
}

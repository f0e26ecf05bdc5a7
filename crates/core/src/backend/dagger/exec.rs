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

/// Runs `timeout` as a child of a shell, so the exec's own process exits normally with the code
/// even when `timeout` kills the command (a signal-killed exec can come back as an engine error).
const TIMEOUT_WRAPPER: &str = "timeout -s KILL \"$0\" \"$@\"; exit $?";

/// How much earlier than the caller's deadline the engine stops the command: enough for the result
/// to travel back before the deadline, so the partial output can be returned.
pub(super) fn in_engine_limit(timeout: Duration, tool: TimeoutTool) -> Option<Duration> {
    let margin = (timeout / 4).min(Duration::from_millis(500));
    let limit = timeout.saturating_sub(margin);
    match tool {
        TimeoutTool::Missing => None,
        TimeoutTool::Fractional => Some(limit.max(Duration::from_millis(10))),
        // Rounded down to whole seconds; under one second only the client side bounds it.
        TimeoutTool::WholeSeconds if limit >= Duration::from_secs(1) => Some(Duration::from_secs(limit.as_secs())),
        TimeoutTool::WholeSeconds => None,
    }
}

/// `limit` as `timeout` takes it.
pub(super) fn format_limit(limit: Duration, tool: TimeoutTool) -> String {
    match tool {
        TimeoutTool::Fractional => format!("{}.{:03}", limit.as_secs(), limit.subsec_millis()),
        _ => limit.as_secs().to_string(),
    }
}

/// The argv of one exec: `[sh -c TIMEOUT_WRAPPER secs] env K=V... [NONCE] sh -c PRELUDE cwd cmd`.
/// Plain variables travel on the command line, so they never enter the container's config and a
/// per-call variable cannot outlive its call.
pub(super) fn exec_argv(
    command: &str,
    cwd: &str,
    plain_env: &[(String, String)],
    nonce: Option<&str>,
    limit: Option<String>,
) -> Vec<String> {
    let mut argv = Vec::new();
    if let Some(secs) = limit {
        argv.extend(["sh".into(), "-c".into(), TIMEOUT_WRAPPER.into(), secs]);
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
    let (stdin_text, stdin_file) = match spec.stdin {
        None => (None, None),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Some(text), None),
            // GraphQL strings cannot carry arbitrary bytes: stage them as a file and redirect.
            Err(e) => {
                let path = format!("/.dagger-sandbox-stdin-{}", uuid::Uuid::new_v4().simple());
                let id = inner.blob_id("stdin", e.as_bytes()).await?;
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
    let (stdout, stderr, code) = tokio::try_join!(done.stdout(), done.stderr(), done.exit_code()).map_err(qe)?;
    let code = code as i64;
    if code == NO_CWD_CODE && stderr == NO_CWD_MARKER {
        return Err(Error::not_found(&sandbox, "working directory", spec.cwd.to_string()));
    }
    // Keep the exec's filesystem, without this call's secrets or staged stdin.
    let mut after = Chain::new(done);
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
}

impl DaggerExec {
    /// Starts the exec's query in a task of its own.
    pub(super) fn start(inner: Arc<Inner>, spec: ExecSpec) -> Self {
        let sandbox = inner.id.clone();
        let task = tokio::spawn(run_exec(inner, spec));
        DaggerExec {
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
            let joined = tokio::select! {
                biased;
                _ = self.killed.cancelled() => {
                    self.abort.abort();
                    self.ended = true;
                    continue;
                }
                r = task => r,
            };
            self.task = None;
            self.ended = true;
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
                Ok(Err(e)) => return Some(Err(e)),
                Err(e) => return Some(Err(join_error(&self.sandbox, "running a command", e))),
            }
        }
    }

    fn kill(&self) -> BoxFuture<'static, Result<()>> {
        let (killed, abort) = (self.killed.clone(), self.abort.clone());
        Box::pin(async move {
            killed.cancel();
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
        assert_eq!(
            argv,
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
        assert_eq!(&a[..4], ["sh", "-c", TIMEOUT_WRAPPER, "1.500"]);
        assert_eq!(a[4], "env");
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
        assert_eq!(
            in_engine_limit(Duration::from_secs(600), TimeoutTool::WholeSeconds),
            Some(Duration::from_secs(599))
        );
        assert_eq!(in_engine_limit(ms(900), TimeoutTool::WholeSeconds), None);
        assert_eq!(in_engine_limit(ms(900), TimeoutTool::Missing), None);
        assert_eq!(format_limit(ms(599_500), TimeoutTool::Fractional), "599.500");
        assert_eq!(format_limit(ms(2_000), TimeoutTool::WholeSeconds), "2");
        for t in [1u64, 10, 100, 1_000, 600_000] {
            let limit = in_engine_limit(ms(t), TimeoutTool::Fractional).unwrap();
            assert!(limit < ms(t) || t < 20, "{t}: {limit:?}");
        }
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

//! Commands on Dagger. An exec is one query that returns when the command has ended, so output
//! arrives all at once (within the output cap, applied in the engine by [`super::wrapper`]); the
//! query runs in a task that a kill abandons (the engine cancels a call whose last waiter leaves).
//! Inside the engine the command runs under `timeout` near the caller's deadline, so a command
//! that runs too long is stopped even if the cancel never reaches the engine, and its partial
//! output and files are still returned and kept: a kill at the deadline waits for that result.

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
use super::wrapper::{exec_argv, format_limit, in_engine_limit, split_status, NO_CWD_CODE, NO_CWD_MARKER};
use super::{exec_opts, join_error, query_error, Inner};
use crate::backend::ExecSpec;
use crate::error::{Error, Result};
use crate::exec::{OutputChunk, OutputStream, RunningExec};

/// What one exec produced.
#[derive(Debug)]
pub(super) struct ExecDone {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
    /// Bytes of (stdout, stderr) the wrapper dropped from the middle to keep within the cap.
    pub dropped: (u64, u64),
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
                let (id, guard) = inner.host_file_id("stdin", crate::stream::from_bytes(e.into_bytes())).await?;
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
        spec.output_cap,
    );
    let started = Instant::now();
    let pending = next.value().with_exec_opts(argv, exec_opts(stdin_text.as_deref(), stdin_file.as_deref()));
    // Every result is asked for at once, in one round trip rather than a sync and then the reads:
    // the engine evaluates the exec once and answers each query from it (the conformance case
    // one_exec_runs_once_so_its_output_and_files_agree checks that live).
    let (synced, outputs) = tokio::join!(pending.sync(), async {
        tokio::try_join!(pending.stdout(), pending.stderr(), pending.exit_code())
    });
    let elapsed = started.elapsed();
    let done = match synced {
        Ok(done) => done,
        Err(e) => {
            // The command ran but the engine calls its end an error: a result, state unchanged.
            return match exit_from_error(&e) {
                Some((code, stdout, stderr)) => Ok(ExecDone {
                    code,
                    stdout,
                    stderr,
                    dropped: (0, 0),
                    timed_out: killed_by_limit(code, elapsed, limit),
                }),
                None => Err(qe(e)),
            };
        }
    };
    let (stdout, mut stderr, code) = outputs.map_err(qe)?;
    // The wrapper reports the real status at the end of stderr; without it, the exit code is it.
    let (own, status) = split_status(&stderr);
    let own_len = own.len();
    stderr.truncate(own_len);
    let (code, dropped) = match status {
        Some(s) => (s.code, (s.stdout_dropped, s.stderr_dropped)),
        None => (code as i64, (0, 0)),
    };
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
    Ok(ExecDone { code, stdout, stderr, dropped, timed_out: killed_by_limit(code, elapsed, limit) })
}

/// A command running on Dagger, as the exec loop sees it.
pub(super) struct DaggerExec {
    sandbox: String,
    task: Option<JoinHandle<Result<ExecDone>>>,
    abort: AbortHandle,
    killed: CancellationToken,
    queue: VecDeque<OutputChunk>,
    code: Option<i64>,
    /// What the engine dropped to keep within the output cap.
    dropped: (u64, u64),
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
        Self::watching(sandbox, tokio::spawn(run_exec(inner, spec)), engine_stop_at)
    }

    /// The exec whose query runs in `task`.
    fn watching(sandbox: String, task: JoinHandle<Result<ExecDone>>, engine_stop_at: Option<Instant>) -> Self {
        DaggerExec {
            engine_stop_at,
            sandbox,
            abort: task.abort_handle(),
            task: Some(task),
            killed: CancellationToken::new(),
            queue: VecDeque::new(),
            code: None,
            dropped: (0, 0),
            hold: false,
            ended: false,
        }
    }
}

impl Drop for DaggerExec {
    fn drop(&mut self) {
        // A call that was dropped (a REST client gone, a timeout around exec) must not leave its
        // query running: it holds the sandbox's state lock until the engine answers, so every later
        // call would wait for the abandoned command (up to its own timeout, an hour by default).
        // Aborting the task drops the query, which ends the engine's request.
        if self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            self.killed.cancel();
            self.abort.abort();
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
                    self.dropped = done.dropped;
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

    fn dropped_in_engine(&self) -> (u64, u64) {
        self.dropped
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

    #[tokio::test]
    async fn a_dropped_exec_lets_go_of_the_sandbox_at_once() {
        // The exec task holds the sandbox's state lock while its query runs, as run_exec does.
        let chain = Arc::new(tokio::sync::Mutex::new(()));
        let held = chain.clone().lock_owned().await;
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
            Ok(ExecDone { code: 0, stdout: String::new(), stderr: String::new(), dropped: (0, 0), timed_out: false })
        });
        let exec = DaggerExec::watching("sbx-test".into(), task, None);
        drop(exec);
        let next = tokio::time::timeout(Duration::from_secs(5), chain.lock()).await;
        assert!(next.is_ok(), "the next call still waits for a dropped command");
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

//! Running a plan: a fresh sandbox, the project copied in, the steps in order, and the sandbox
//! removed whatever happens (a failing step, an error, a cancellation).

use std::time::Duration;

use dagger_sandbox::{CancellationToken, ErrorCode, ExecOptions, OutputChunk, RefreshOptions, Sandbox, SandboxConfig};
use tokio::sync::mpsc;

use crate::report::{tail, Report, StepReport, TAIL_CHARS, TAIL_LINES};
use crate::{Plan, ValidateError, EXCLUDE};

/// How a validation runs; every field has a default.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// The time limit of each step (default 10 minutes); a step past it is killed and reported
    /// with `timedOut: true`.
    pub step_timeout: Duration,
    /// Cancelling it stops the running step and removes the sandbox; `validate` then returns
    /// [`ValidateError::Cancelled`].
    pub cancel: CancellationToken,
    /// Where progress goes as it happens (stages and the steps' output), for spinners and MCP
    /// progress notifications. Sends never block the validation: a full channel drops events.
    pub progress: Option<mpsc::Sender<Progress>>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { step_timeout: Duration::from_secs(600), cancel: CancellationToken::new(), progress: None }
    }
}

/// What a running validation is doing.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The sandbox is being created.
    Creating,
    /// The sandbox exists; says where it runs, so a weaker isolation can be warned about before
    /// any step runs.
    Created {
        /// The backend it runs on.
        backend: String,
        /// `container` or `process`.
        isolation: String,
        /// Why `auto` fell back to a weaker backend, if it did.
        fallback_reason: Option<String>,
    },
    /// The project is being copied in.
    Copying,
    /// A step started.
    StepStarted {
        /// Its name.
        name: &'static str,
        /// Its command.
        command: String,
    },
    /// Output of the running step.
    Output(OutputChunk),
    /// A step ended.
    StepFinished(StepReport),
}

/// Validates `plan` in a new sandbox made from `config` and returns the verdict. A failing or
/// timed-out step is a verdict (`passed: false`), not an error; errors are for a project that
/// cannot be run, a sandbox that cannot be made or fails, and cancellation.
pub async fn validate(config: SandboxConfig, plan: &Plan, opts: ValidateOptions) -> Result<Report, ValidateError> {
    let say = |p: Progress| {
        if let Some(tx) = &opts.progress {
            let _ = tx.try_send(p);
        }
    };
    say(Progress::Creating);
    let sb = tokio::select! {
        r = Sandbox::create(config) => r.map_err(ValidateError::at("creating the sandbox"))?,
        _ = opts.cancel.cancelled() => return Err(ValidateError::Cancelled),
    };
    say(Progress::Created {
        backend: sb.backend().to_string(),
        isolation: sb.isolation().to_string(),
        fallback_reason: sb.fallback_reason().map(str::to_string),
    });
    // The sandbox is removed on every path: race the work against the cancellation, then close.
    let outcome = tokio::select! {
        r = run_steps(&sb, plan, &opts, &say) => r,
        _ = opts.cancel.cancelled() => Err(ValidateError::Cancelled),
    };
    let closed = sb.close().await;
    let steps = outcome?;
    closed.map_err(ValidateError::at("removing the sandbox"))?;
    Ok(Report {
        passed: steps.len() == plan.steps.len() && steps.iter().all(StepReport::passed),
        backend: sb.backend().to_string(),
        isolation: sb.isolation().to_string(),
        image: sb.image().map(str::to_string),
        fallback_reason: sb.fallback_reason().map(str::to_string),
        steps,
    })
}

/// Copies the project in and runs the steps in order, stopping at the first that fails.
async fn run_steps(
    sb: &Sandbox,
    plan: &Plan,
    opts: &ValidateOptions,
    say: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<StepReport>, ValidateError> {
    let workdir = sb.workdir();
    say(Progress::Copying);
    sb.refresh_from_host(&plan.dir, &workdir, RefreshOptions::exclude(EXCLUDE))
        .await
        .map_err(ValidateError::at(format!("copying {} into {workdir}", plan.dir.display())))?;
    let mut reports = Vec::new();
    for step in &plan.steps {
        say(Progress::StepStarted { name: step.name, command: step.command.clone() });
        let mut exec = ExecOptions::new().timeout(opts.step_timeout).cancel(opts.cancel.clone());
        let forward = opts.progress.clone().map(|progress| {
            let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
            exec = std::mem::take(&mut exec).output(tx);
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    let _ = progress.try_send(Progress::Output(chunk));
                }
            })
        });
        let result = sb.exec(&step.command, exec).await;
        if let Some(task) = forward {
            let _ = task.await;
        }
        let report = match result {
            Ok(r) => StepReport {
                name: step.name.to_string(),
                command: step.command.clone(),
                exit_code: r.exit_code,
                duration_ms: r.duration_ms,
                timed_out: false,
                stdout_tail: tail(&r.stdout, TAIL_LINES, TAIL_CHARS),
                stderr_tail: tail(&r.stderr, TAIL_LINES, TAIL_CHARS),
            },
            Err(e) if e.code() == ErrorCode::Timeout => {
                let (out, err) = e.partial_output().map(|p| (p.stdout.clone(), p.stderr.clone())).unwrap_or_default();
                StepReport {
                    name: step.name.to_string(),
                    command: step.command.clone(),
                    exit_code: -1,
                    duration_ms: opts.step_timeout.as_millis() as u64,
                    timed_out: true,
                    stdout_tail: tail(&out, TAIL_LINES, TAIL_CHARS),
                    stderr_tail: tail(&format!("{err}\n{e}"), TAIL_LINES, TAIL_CHARS),
                }
            }
            Err(e) if e.code() == ErrorCode::Cancelled => return Err(ValidateError::Cancelled),
            Err(e) => return Err(ValidateError::at(format!("running the {} step ({})", step.name, step.command))(e)),
        };
        let passed = report.passed();
        say(Progress::StepFinished(report.clone()));
        reports.push(report);
        if !passed {
            break;
        }
    }
    Ok(reports)
}

//! Running a plan: a fresh sandbox, the project copied in, the steps in order, and the sandbox
//! removed whatever happens (a failing step, an error, a cancellation).

use std::time::Duration;

use dagger_sandbox::{
    BackendKind, CacheKind, Caches, CancellationToken, ErrorCode, ExecOptions, OutputChunk, RefreshOptions, Sandbox,
    SandboxConfig,
};
use tokio::sync::mpsc;

use crate::modules::{self, STORE_ENV};
use crate::report::{tail, Report, StepReport, TAIL_CHARS, TAIL_LINES};
use crate::{Plan, ValidateError, EXCLUDE};

/// Where the cache variables point once an install failed with the shared caches mounted: fresh
/// directories of this sandbox, for the install's second run and every step after it. On the
/// local backend `/tmp` is the host's, so they go in the sandbox's own directory (removed with it).
fn private_caches(sb: &Sandbox) -> String {
    if sb.backend() == BackendKind::Local {
        format!("{}/.dagger-sandbox-private-caches", sb.resource_id())
    } else {
        "/tmp/dagger-sandbox-private-caches".to_string()
    }
}

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
    /// Mount this user's dependency caches (npm, pnpm, yarn, pip and the `node_modules` store)
    /// when the config does not say otherwise (default on). A cache that fails degrades to a plain
    /// install with a warning in the report, never to another verdict.
    pub caches: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            step_timeout: Duration::from_secs(600),
            cancel: CancellationToken::new(),
            progress: None,
            caches: true,
        }
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
pub async fn validate(mut config: SandboxConfig, plan: &Plan, opts: ValidateOptions) -> Result<Report, ValidateError> {
    if opts.caches && config.caches.is_none() {
        config = config.caches(Caches::All(true));
    }
    // Nothing in the sandbox outlives the verdict: on Docker the engine deletes the installed tree
    // after the container is killed, instead of the caller waiting seconds for it.
    config = config.disposable(true);
    let say = |p: Progress| {
        if let Some(tx) = &opts.progress {
            let _ = tx.try_send(p);
        }
    };
    say(Progress::Creating);
    let t = std::time::Instant::now();
    let sb = tokio::select! {
        r = Sandbox::create(config) => r.map_err(ValidateError::at("creating the sandbox"))?,
        _ = opts.cancel.cancelled() => return Err(ValidateError::Cancelled),
    };
    phase("create", t);
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
    let t = std::time::Instant::now();
    let closed = sb.close().await;
    phase("remove", t);
    let Outcome { steps, node_modules_cache, mut warnings } = outcome?;
    closed.map_err(ValidateError::at("removing the sandbox"))?;
    warnings.splice(0..0, sb.warnings());
    Ok(Report {
        passed: steps.len() == plan.steps.len() && steps.iter().all(StepReport::passed),
        backend: sb.backend().to_string(),
        isolation: sb.isolation().to_string(),
        image: sb.image().map(str::to_string),
        fallback_reason: sb.fallback_reason().map(str::to_string),
        steps,
        node_modules_cache,
        warnings,
    })
}

/// What running the steps gave.
struct Outcome {
    steps: Vec<StepReport>,
    node_modules_cache: String,
    warnings: Vec<String>,
}

/// Copies the project in, restores the `node_modules` store's entry when there is one, and runs the
/// steps in order, stopping at the first that fails.
async fn run_steps(
    sb: &Sandbox,
    plan: &Plan,
    opts: &ValidateOptions,
    say: &(dyn Fn(Progress) + Sync),
) -> Result<Outcome, ValidateError> {
    let workdir = sb.workdir();
    say(Progress::Copying);
    let t = std::time::Instant::now();
    sb.refresh_from_host(&plan.dir, &workdir, RefreshOptions::exclude(EXCLUDE))
        .await
        .map_err(ValidateError::at(format!("copying {} into {workdir}", plan.dir.display())))?;
    phase("copy-in", t);
    let env = sb.env();
    let cache_vars: Vec<&str> = CacheKind::ALL.iter().map(|k| k.env_var()).filter(|v| env.contains_key(*v)).collect();
    let mut warnings = Vec::new();
    let store_key = plan.modules_key.as_deref().filter(|_| env.contains_key(STORE_ENV));
    let mut node_modules_cache = "off".to_string();
    if let Some(key) = store_key {
        let t = std::time::Instant::now();
        node_modules_cache = match helper(sb, &modules::restore_script(key), opts).await {
            Ok(said) if said == "hit" || said == "miss" => said,
            Ok(said) => {
                warnings.push(format!(
                    "the node_modules cache entry could not be restored ({said}); installing from scratch"
                ));
                "miss".into()
            }
            Err(e) => {
                warnings.push(format!("the node_modules cache could not be read ({e}); installing from scratch"));
                "miss".into()
            }
        };
        phase("restore", t);
    }
    let mut reports = Vec::new();
    let mut saving = None;
    for step in &plan.steps {
        let install = step.name == "install";
        let warm = install && node_modules_cache == "hit";
        let command = if warm { modules::WARM_INSTALL.to_string() } else { step.command.clone() };
        let t = std::time::Instant::now();
        let mut report = run_step(sb, step.name, &command, opts, say).await?;
        phase(step.name, t);
        if install && !report.passed() && !cache_vars.is_empty() && !report.timed_out {
            // A full, corrupt or locked cache must not decide the verdict: the install runs again
            // from scratch, with fresh private caches, and that run's outcome counts.
            warnings.push(format!(
                "the install step failed (exit {}) with the shared dependency caches; it ran again without them",
                report.exit_code
            ));
            // Every later step stays off the shared caches too: npm writes its logs into its cache,
            // so a test step on a full cache would fail with ENOSPC and turn a pass into a fail.
            let dir = private_caches(sb);
            sb.with_envs(cache_vars.iter().map(|var| (*var, format!("{dir}/{var}"))))
                .map_err(ValidateError::at("switching to private caches"))?;
            let fresh = format!("mkdir -p '{dir}' && find . -name node_modules -prune -type d -exec rm -rf {{}} + ; ");
            report = run_step(sb, step.name, &(fresh + &step.command), opts, say).await?;
            report.command = step.command.clone();
        } else if install && report.passed() && node_modules_cache == "miss" {
            if let Some(key) = store_key {
                // Saved while the tests run: the tree is complete once the install passed.
                let (sb, script) = (sb.clone(), modules::save_script(key, store_mb()));
                let opts = ExecOptions::new().timeout(opts.step_timeout).cancel(opts.cancel.clone());
                saving = Some(tokio::spawn(async move {
                    let t = std::time::Instant::now();
                    let r = sb.exec(&script, opts).await;
                    phase("save", t);
                    r
                }));
            }
        }
        let passed = report.passed();
        say(Progress::StepFinished(report.clone()));
        reports.push(report);
        if !passed {
            break;
        }
    }
    if let Some(task) = saving {
        let t = std::time::Instant::now();
        let saved = task.await;
        phase("save-wait", t);
        match saved {
            Ok(Ok(r)) if r.exit_code == 0 => {}
            Ok(Ok(r)) => warnings.push(format!("the node_modules cache was not saved: {}", r.stderr.trim())),
            Ok(Err(e)) => warnings.push(format!("the node_modules cache was not saved: {e}")),
            Err(e) => warnings.push(format!("the node_modules cache was not saved: {e}")),
        }
    }
    Ok(Outcome { steps: reports, node_modules_cache, warnings })
}

/// Logs how long a phase of the validation took (`RUST_LOG=dagger_sandbox_validate=debug`), so
/// the time of a slow validation can be placed.
fn phase(name: &str, since: std::time::Instant) {
    tracing::debug!(phase = name, ms = since.elapsed().as_millis() as u64, "validate phase done");
}

/// The store's size bound in MiB: `DAGGER_SANDBOX_NODE_MODULES_CACHE_MB`, else the default.
fn store_mb() -> u64 {
    std::env::var("DAGGER_SANDBOX_NODE_MODULES_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(modules::DEFAULT_STORE_MB)
}

/// Runs a cache helper script; its last stdout line, or why it failed.
async fn helper(sb: &Sandbox, script: &str, opts: &ValidateOptions) -> Result<String, String> {
    let exec = ExecOptions::new().timeout(opts.step_timeout).cancel(opts.cancel.clone());
    match sb.exec(script, exec).await {
        Ok(r) if r.exit_code == 0 => Ok(r.stdout.lines().last().unwrap_or("").trim().to_string()),
        Ok(r) => Err(format!("exit {}: {}", r.exit_code, tail(&r.stderr, 2, 300))),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one step and reports it; a timeout is a verdict, a cancellation or engine failure an error.
async fn run_step(
    sb: &Sandbox,
    name: &'static str,
    command: &str,
    opts: &ValidateOptions,
    say: &(dyn Fn(Progress) + Sync),
) -> Result<StepReport, ValidateError> {
    say(Progress::StepStarted { name, command: command.to_string() });
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
    let result = sb.exec(command, exec).await;
    if let Some(task) = forward {
        let _ = task.await;
    }
    Ok(match result {
        Ok(r) => StepReport {
            name: name.to_string(),
            command: command.to_string(),
            exit_code: r.exit_code,
            duration_ms: r.duration_ms,
            timed_out: false,
            stdout_tail: tail(&r.stdout, TAIL_LINES, TAIL_CHARS),
            stderr_tail: tail(&r.stderr, TAIL_LINES, TAIL_CHARS),
        },
        Err(e) if e.code() == ErrorCode::Timeout => {
            let (out, err) = e.partial_output().map(|p| (p.stdout.clone(), p.stderr.clone())).unwrap_or_default();
            StepReport {
                name: name.to_string(),
                command: command.to_string(),
                exit_code: -1,
                duration_ms: opts.step_timeout.as_millis() as u64,
                timed_out: true,
                stdout_tail: tail(&out, TAIL_LINES, TAIL_CHARS),
                stderr_tail: tail(&format!("{err}\n{e}"), TAIL_LINES, TAIL_CHARS),
            }
        }
        Err(e) if e.code() == ErrorCode::Cancelled => return Err(ValidateError::Cancelled),
        Err(e) => return Err(ValidateError::at(format!("running the {name} step ({command})"))(e)),
    })
}

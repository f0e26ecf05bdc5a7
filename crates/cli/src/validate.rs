//! `validate`: the main job of the tool — copy a project into a fresh sandbox (without
//! `node_modules` and `.git`), run its install and test steps, and give a verdict. It drives the
//! core directly, so it works with no daemon and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use dagger_sandbox::{BackendChoice, CancellationToken, SandboxConfig};
use dagger_sandbox_validate::{validate, Plan, Progress, Report, ValidateError, ValidateOptions, TAIL_CHARS};
use tokio::sync::mpsc;

use crate::client::CodedError;
use crate::output::{self, Spinner, Table};

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The project directory to copy in
    dir: PathBuf,
    /// Install step [default with a package.json: npm install]; "" skips it
    #[arg(long, value_name = "CMD")]
    install: Option<String>,
    /// Test step [default with a package.json: npm test]; "" skips it
    #[arg(long, value_name = "CMD")]
    test: Option<String>,
    /// Engine to use (auto picks the strongest that answers)
    #[arg(long, value_name = "B", default_value = "auto", value_parser = ["auto", "dagger", "docker", "local"])]
    backend: String,
    /// Image to start from (wins over --template)
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Named defaults to start from: node, python, ... (overridable in <state-dir>/templates.json)
    #[arg(long, value_name = "NAME", default_value = "node")]
    template: String,
    /// Time limit of each step (e.g. 90s, 10m)
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Let the steps reach the network (off by default; `npm install` of real dependencies needs it)
    #[arg(long)]
    network: bool,
    /// Trust these certificate authorities in the sandbox: host (this machine's bundle) or PEM files
    /// joined by ':' (for networks that intercept TLS; `npm install` fails without)
    #[arg(long, value_name = "host|PATH", env = "DAGGER_SANDBOX_CA_CERTIFICATES")]
    ca_certificates: Option<String>,
    /// Do not mount the shared dependency caches (npm, pnpm, yarn, pip, node_modules store)
    #[arg(long)]
    no_cache: bool,
    /// Print `{passed, backend, isolation, steps: [...]}` instead of the table
    #[arg(long)]
    json: bool,
}

fn invalid(message: String) -> anyhow::Error {
    CodedError::new("INVALID_ARGUMENT", message).into()
}

fn coded(e: ValidateError) -> anyhow::Error {
    CodedError::new(e.code().as_str(), e.to_string()).into()
}

/// The sandbox config: the template (built-in or from `<state-dir>/templates.json`) gives image and
/// working directory, `--image` wins over its image.
fn config(args: &ValidateArgs, state_dir: &Path) -> anyhow::Result<SandboxConfig> {
    let backend: BackendChoice = args.backend.parse()?;
    let templates = dagger_sandbox_server::templates::load(state_dir)
        .map_err(|e| anyhow::Error::new(CodedError::new(e.code(), e.to_string())))?;
    let tpl = templates.get(&args.template).ok_or_else(|| {
        invalid(format!("unknown template {:?}; known: {}", args.template, templates.names().join(", ")))
    })?;
    let image = args.image.clone().unwrap_or_else(|| tpl.image.clone());
    let mut cfg = SandboxConfig::new();
    if let Some(ca) = &args.ca_certificates {
        cfg = cfg.ca_certificates(crate::commands::ca_certificates(ca)?);
    }
    Ok(cfg
        .backend(backend)
        .image(image)
        .workdir(tpl.working_directory.clone())
        .timeout(args.timeout)
        .network(args.network)
        .label("dev.dagger-sandbox.purpose", "validate"))
}

/// Runs the validation (dagger-sandbox-validate) and prints the verdict; exits 0 only when every
/// step passed.
pub async fn run(args: ValidateArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let plan = Plan::for_project(&args.dir, args.install.as_deref(), args.test.as_deref()).map_err(|e| match e {
        ValidateError::NothingToRun(dir) => invalid(format!(
            "nothing to run: {} has no package.json; pass --install CMD and/or --test CMD",
            dir.display()
        )),
        e => coded(e),
    })?;
    let cfg = config(&args, state_dir)?;
    let what = args.image.clone().unwrap_or_else(|| args.template.clone());
    // Ctrl-C must still remove the container: the validation stops and closes its sandbox.
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let (tx, rx) = mpsc::channel(256);
    let spinners = tokio::spawn(show_progress(rx, what));
    let opts = ValidateOptions { step_timeout: args.timeout, cancel, progress: Some(tx), caches: !args.no_cache };
    let outcome = validate(cfg, &plan, opts).await;
    let _ = spinners.await;
    let report = match outcome {
        Ok(r) => r,
        Err(ValidateError::Cancelled) => {
            return Err(CodedError::new("CANCELLED", "interrupted; the sandbox was removed").into())
        }
        Err(e) => return Err(coded(e)),
    };
    if args.json {
        output::print_json(&report)?;
    } else {
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name).collect();
        print_human(&report, &names, &args)?;
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One spinner per stage while the validation runs (shown only on a terminal).
async fn show_progress(mut rx: mpsc::Receiver<Progress>, what: String) {
    let mut current: Option<Spinner> = None;
    while let Some(p) = rx.recv().await {
        let label = match p {
            Progress::Creating => format!("starting a {what} sandbox"),
            Progress::Copying => "copying the project into the sandbox".to_string(),
            Progress::StepStarted { name, command } => format!("{name}: {command}"),
            Progress::Output(_) => continue,
            Progress::Created { isolation, fallback_reason, .. } => {
                if let Some(s) = current.take() {
                    s.finish().await;
                }
                if let Some(why) = fallback_reason {
                    eprintln!("warning: {why}");
                }
                if isolation == "process" {
                    eprintln!(
                        "warning: the local backend runs the steps as host processes, without container isolation"
                    );
                }
                continue;
            }
            Progress::StepFinished(_) => {
                if let Some(s) = current.take() {
                    s.finish().await;
                }
                continue;
            }
        };
        if let Some(s) = current.take() {
            s.finish().await;
        }
        current = Some(Spinner::start(label));
    }
    if let Some(s) = current.take() {
        s.finish().await;
    }
}

fn print_human(report: &Report, steps: &[&str], args: &ValidateArgs) -> std::io::Result<()> {
    let mut t = Table::new(["STEP", "EXIT", "DURATION", "OUTPUT (last line)"]);
    for s in &report.steps {
        // A failing step's last stderr line is usually the reason; a passing one's stdout is.
        let text = if s.exit_code != 0 && !s.stderr_tail.trim().is_empty() { &s.stderr_tail } else { &s.stdout_tail };
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let exit = if s.timed_out { "timeout".to_string() } else { s.exit_code.to_string() };
        t.row([s.name.clone(), exit, output::human_ms(s.duration_ms), output::ellipsize(last, 72)]);
    }
    for name in steps.iter().skip(report.steps.len()) {
        t.row([name.to_string(), "-".into(), "-".into(), "skipped (an earlier step failed)".into()]);
    }
    out!("{}", t.render())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let total: u64 = report.steps.iter().map(|s| s.duration_ms).sum();
    let engine = format!("{}, {} isolation", report.backend, report.isolation);
    match report.failed_step() {
        None => outln!("\nPASS  {} step(s) passed in {} ({engine})", report.steps.len(), output::human_ms(total))?,
        Some(s) => {
            outln!("\n--- {} ({}) output, last lines ---", s.name, s.command)?;
            if !s.stdout_tail.is_empty() {
                outln!("{}", output::tail(&s.stdout_tail, 20, TAIL_CHARS))?;
            }
            if !s.stderr_tail.is_empty() {
                outln!("{}", output::tail(&s.stderr_tail, 20, TAIL_CHARS))?;
            }
            let why = if s.timed_out {
                format!("timed out after {}", humantime::format_duration(args.timeout))
            } else {
                format!("exited {}", s.exit_code)
            };
            let hint = if s.name == "install" && !args.network { " (the network was off: try --network)" } else { "" };
            outln!("\nFAIL  step {} ({}) {why}{hint} ({engine})", s.name, s.command)?;
        }
    }
    Ok(())
}

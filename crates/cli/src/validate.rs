//! `validate`: the main job of the tool — copy a project into a fresh sandbox (without
//! `node_modules` and `.git`), run its install and test steps, and give a verdict. It drives the
//! core directly, so it works with no daemon and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dagger_sandbox::{BackendChoice, ErrorCode, ExecOptions, RefreshOptions, Sandbox, SandboxConfig};
use serde::Serialize;

use crate::client::CodedError;
use crate::output::{self, Spinner, Table};

/// What is never copied into the sandbox: rebuilt there, or not part of the project.
const EXCLUDE: [&str; 2] = ["node_modules", ".git"];
/// Lines of each stream kept in `--json` tails and shown for a failing step.
const TAIL_LINES: usize = 40;
/// Characters of each stream kept in `--json` tails.
const TAIL_CHARS: usize = 4000;

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
    /// Print `{passed, backend, isolation, steps: [...]}` instead of the table
    #[arg(long)]
    json: bool,
}

/// One step's outcome, as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StepReport {
    name: String,
    command: String,
    exit_code: i64,
    duration_ms: u64,
    timed_out: bool,
    stdout_tail: String,
    stderr_tail: String,
}

/// The whole verdict, as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    passed: bool,
    backend: String,
    isolation: String,
    image: Option<String>,
    fallback_reason: Option<String>,
    steps: Vec<StepReport>,
}

fn invalid(message: String) -> anyhow::Error {
    CodedError::new("INVALID_ARGUMENT", message).into()
}

/// The steps to run: the flags, else npm's defaults when the project has a package.json.
fn plan(args: &ValidateArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    if !args.dir.exists() {
        return Err(invalid(format!("{} does not exist", args.dir.display())));
    }
    if !args.dir.is_dir() {
        return Err(invalid(format!("{} is not a directory", args.dir.display())));
    }
    let npm = args.dir.join("package.json").is_file();
    let pick = |flag: &Option<String>, default: &str| match flag {
        Some(cmd) => cmd.trim().to_string(),
        None if npm => default.to_string(),
        None => String::new(),
    };
    let steps: Vec<_> = [("install", pick(&args.install, "npm install")), ("test", pick(&args.test, "npm test"))]
        .into_iter()
        .filter(|(_, cmd)| !cmd.is_empty())
        .collect();
    if steps.is_empty() {
        return Err(invalid(format!(
            "nothing to run: {} has no package.json; pass --install CMD and/or --test CMD",
            args.dir.display()
        )));
    }
    Ok(steps)
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
    Ok(SandboxConfig::new()
        .backend(backend)
        .image(image)
        .workdir(tpl.working_directory.clone())
        .timeout(args.timeout)
        .network(args.network)
        .label("dev.dagger-sandbox.purpose", "validate"))
}

/// Runs the validation and prints the verdict; exits 0 only when every step passed.
pub async fn run(args: ValidateArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let steps = plan(&args)?;
    let cfg = config(&args, state_dir)?;
    let dir = args.dir.canonicalize().with_context(|| format!("reading {}", args.dir.display()))?;
    let spinner = Spinner::start(format!("starting a {} sandbox", args.image.as_deref().unwrap_or(&args.template)));
    let created = Sandbox::create(cfg).await;
    spinner.finish().await;
    let sb = created.context("creating the sandbox")?;
    if let Some(why) = sb.fallback_reason() {
        eprintln!("warning: {why}");
    }
    if sb.isolation().as_str() == "process" {
        eprintln!("warning: the local backend runs the steps as host processes, without container isolation");
    }
    // Ctrl-C must still remove the container: race the work against it, then always close.
    let outcome = tokio::select! {
        r = run_steps(&sb, &dir, &steps, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(CodedError::new("CANCELLED", "interrupted; the sandbox was removed").into()),
    };
    let closed = sb.close().await;
    let reports = outcome?;
    closed.context("removing the sandbox")?;
    let report = Report {
        passed: reports.iter().all(|s| s.exit_code == 0 && !s.timed_out) && reports.len() == steps.len(),
        backend: sb.backend().to_string(),
        isolation: sb.isolation().to_string(),
        image: sb.image().map(str::to_string),
        fallback_reason: sb.fallback_reason().map(str::to_string),
        steps: reports,
    };
    if args.json {
        output::print_json(&report)?;
    } else {
        print_human(&report, &steps, &args)?;
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Copies the project in and runs the steps in order, stopping at the first that fails.
async fn run_steps(
    sb: &Sandbox,
    dir: &Path,
    steps: &[(&'static str, String)],
    args: &ValidateArgs,
) -> anyhow::Result<Vec<StepReport>> {
    let workdir = sb.workdir();
    let spinner = Spinner::start(format!("copying {} into the sandbox", dir.display()));
    let copied = sb.refresh_from_host(dir, &workdir, RefreshOptions::exclude(EXCLUDE)).await;
    spinner.finish().await;
    copied.with_context(|| format!("copying {} into {workdir}", dir.display()))?;
    let mut reports = Vec::new();
    for (name, command) in steps {
        let spinner = Spinner::start(format!("{name}: {command}"));
        let result = sb.exec(command, ExecOptions::new().timeout(args.timeout)).await;
        spinner.finish().await;
        let report = match result {
            Ok(r) => StepReport {
                name: name.to_string(),
                command: command.clone(),
                exit_code: r.exit_code,
                duration_ms: r.duration_ms,
                timed_out: false,
                stdout_tail: output::tail(&r.stdout, TAIL_LINES, TAIL_CHARS),
                stderr_tail: output::tail(&r.stderr, TAIL_LINES, TAIL_CHARS),
            },
            Err(e) if e.code() == ErrorCode::Timeout => {
                let partial = e.partial_output().cloned();
                let (out, err) = partial.map(|p| (p.stdout, p.stderr)).unwrap_or_default();
                StepReport {
                    name: name.to_string(),
                    command: command.clone(),
                    exit_code: -1,
                    duration_ms: args.timeout.as_millis() as u64,
                    timed_out: true,
                    stdout_tail: output::tail(&out, TAIL_LINES, TAIL_CHARS),
                    stderr_tail: output::tail(&format!("{err}\n{e}"), TAIL_LINES, TAIL_CHARS),
                }
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("running the {name} step ({command})"))),
        };
        let failed = report.exit_code != 0 || report.timed_out;
        reports.push(report);
        if failed {
            break;
        }
    }
    Ok(reports)
}

fn print_human(report: &Report, steps: &[(&'static str, String)], args: &ValidateArgs) -> std::io::Result<()> {
    let mut t = Table::new(["STEP", "EXIT", "DURATION", "OUTPUT (last line)"]);
    for s in &report.steps {
        // A failing step's last stderr line is usually the reason; a passing one's stdout is.
        let text = if s.exit_code != 0 && !s.stderr_tail.trim().is_empty() { &s.stderr_tail } else { &s.stdout_tail };
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let exit = if s.timed_out { "timeout".to_string() } else { s.exit_code.to_string() };
        t.row([s.name.clone(), exit, output::human_ms(s.duration_ms), output::ellipsize(last, 72)]);
    }
    for (name, _) in steps.iter().skip(report.steps.len()) {
        t.row([name.to_string(), "-".into(), "-".into(), "skipped (an earlier step failed)".into()]);
    }
    out!("{}", t.render())?;
    let total: u64 = report.steps.iter().map(|s| s.duration_ms).sum();
    let engine = format!("{}, {} isolation", report.backend, report.isolation);
    match report.steps.iter().find(|s| s.exit_code != 0 || s.timed_out) {
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

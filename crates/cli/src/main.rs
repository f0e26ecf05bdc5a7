//! `dagger-sandbox`: the command line over the daemon's REST API (create, list, exec, logs, stop,
//! clean), the daemon itself (`serve`), and the daemon-free checks (`doctor`, `validate`).

#[macro_use]
mod output;
mod client;
mod commands;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Isolated sandboxes for code and agents: a daemon, its sessions, and project validation.
#[derive(Debug, Parser)]
#[command(name = "dagger-sandbox", version, about, propagate_version = true)]
struct Cli {
    /// Where the session database, the token and the daemon address live
    /// [default: $XDG_STATE_HOME/dagger-sandbox or ~/.local/state/dagger-sandbox]
    #[arg(long, global = true, env = "DAGGER_SANDBOX_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the daemon in the foreground (REST API, dashboard, reaper)
    Serve(commands::serve::ServeArgs),
    /// Create a sandbox session (with --port and a COMMAND: a service)
    Create(commands::create::CreateArgs),
    /// List sessions, newest first
    #[command(visible_alias = "ls")]
    List(commands::list::ListArgs),
    /// Run a command in a session; its exit code becomes ours
    Exec(commands::exec::ExecArgs),
    /// Show what a session printed
    Logs(commands::logs::LogsArgs),
    /// Stop a session and remove its engine resources
    Stop(commands::stop::StopArgs),
    /// Stop every session
    Clean(JsonFlag),
    /// Take, list and delete snapshots of sessions (create --from-snapshot starts from one)
    Snapshot(commands::snapshot::SnapshotArgs),
    /// Stop a session's sandbox but keep it: files kept, nothing running, until `resume`
    Pause(commands::pause::PauseArgs),
    /// Start a paused (stopped) session's sandbox again, with the same files, env and workdir
    Resume(commands::pause::PauseArgs),
    /// Check the engines, the state dir and the daemon
    Doctor(JsonFlag),
    /// Copy a project into a fresh sandbox, install and test it, print a verdict (no daemon needed)
    Validate(validate::ValidateArgs),
    /// Serve the sandbox as MCP tools on stdio, for coding agents (docs/mcp.md)
    Mcp(commands::mcp::McpArgs),
    /// List or prune the dependency caches sandboxes share (npm, pnpm, yarn, pip, node_modules)
    Cache(commands::cache::CacheArgs),
}

/// `--json` for commands with no other options.
#[derive(Debug, Args)]
struct JsonFlag {
    /// Print JSON (the REST API's camelCase objects) instead of a table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state_dir = cli.state_dir.clone().unwrap_or_else(dagger_sandbox_server::state::default_state_dir);
    if !matches!(cli.command, Cmd::Serve(_)) {
        // Client commands log only when asked: their stdout is data and stderr is for errors.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Serve(a) => commands::serve::run(a, state_dir).await,
            Cmd::Create(a) => commands::create::run(a, &state_dir).await,
            Cmd::List(a) => commands::list::run(a, &state_dir).await,
            Cmd::Exec(a) => commands::exec::run(a, &state_dir).await,
            Cmd::Logs(a) => commands::logs::run(a, &state_dir).await,
            Cmd::Stop(a) => commands::stop::run(a, &state_dir).await,
            Cmd::Clean(a) => commands::clean::run(a.json, &state_dir).await,
            Cmd::Snapshot(a) => commands::snapshot::run(a, &state_dir).await,
            Cmd::Pause(a) => commands::pause::run(a, "stop", &state_dir).await,
            Cmd::Resume(a) => commands::pause::run(a, "resume", &state_dir).await,
            Cmd::Doctor(a) => commands::doctor::run(a.json, &state_dir).await,
            Cmd::Validate(a) => validate::run(a, &state_dir).await,
            Cmd::Mcp(a) => commands::mcp::run(a).await,
            Cmd::Cache(a) => commands::cache::run(a).await,
        }
    });
    // Background tasks (a spinner, a streaming body) must not keep a finished command alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): what it wanted it got; nothing to report.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// `<message> (<CODE>)` for errors that carry a stable code (a host I/O failure is `IO_ERROR`), the
/// whole chain otherwise.
fn describe(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<client::CodedError>() {
            return format!("{} ({})", context_prefix(e, cause, &c.message), c.code);
        }
        if let Some(c) = cause.downcast_ref::<dagger_sandbox::Error>() {
            return format!("{} ({})", context_prefix(e, cause, &c.to_string()), c.code().as_str());
        }
    }
    if e.chain().any(|c| c.is::<std::io::Error>()) {
        return format!("{e:#} (IO_ERROR)");
    }
    format!("{e:#}")
}

/// The message with any context added above the coded cause, e.g. `validating ./app: <message>`.
fn context_prefix(e: &anyhow::Error, coded: &(dyn std::error::Error + 'static), message: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        if std::ptr::addr_eq(cause, coded) {
            break;
        }
        parts.push(cause.to_string());
    }
    parts.push(message.to_string());
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn coded_errors_print_message_then_code() {
        let e = anyhow::Error::new(client::CodedError::new("NOT_FOUND", "no session sbx-1"));
        assert_eq!(describe(&e), "no session sbx-1 (NOT_FOUND)");
        let e = e.context("stopping sbx-1");
        assert_eq!(describe(&e), "stopping sbx-1: no session sbx-1 (NOT_FOUND)");
        let e = anyhow::anyhow!("plain").context("outer");
        assert_eq!(describe(&e), "outer: plain");
    }
}

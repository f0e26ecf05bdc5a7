//! `exec`: runs one command in a session through the daemon and passes its exit code through, so
//! `dagger-sandbox exec ID -- npm test` works in shell conditionals and CI steps.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use super::shell_join;
use crate::client::Client;
use crate::output;

/// Options of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The session id
    #[arg(value_parser = super::session_id)]
    id: String,
    /// Give up after this long (e.g. 30s, 10m) [daemon default: 10m]
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Environment variable for this command (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Directory to run in (relative to the session's working directory)
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Print `{exitCode, stdout, stderr, durationMs, truncated}` instead of the output
    #[arg(long)]
    json: bool,
    /// The command, after `--` (one word is run as a whole shell command line)
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The exit status a command's exit code maps to: itself when it fits in a byte, else 1.
pub fn exit_status(code: i64) -> ExitCode {
    match u8::try_from(code) {
        Ok(c) => ExitCode::from(c),
        Err(_) => ExitCode::FAILURE,
    }
}

/// Runs the command and exits with its exit code.
pub async fn run(args: ExecArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let mut body = Map::new();
    body.insert("command".into(), json!(shell_join(&args.command)));
    if !args.env.is_empty() {
        let mut env = Map::new();
        for kv in &args.env {
            let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                anyhow::bail!(crate::client::CodedError::new(
                    "INVALID_ARGUMENT",
                    format!("--env expects KEY=VALUE, got {kv:?}")
                ));
            };
            env.insert(k.into(), json!(v));
        }
        body.insert("env".into(), Value::Object(env));
    }
    if let Some(cwd) = &args.cwd {
        body.insert("cwd".into(), json!(cwd));
    }
    if let Some(t) = args.timeout {
        body.insert("timeoutMs".into(), json!(t.as_millis() as u64));
    }
    let client = Client::connect(state_dir).await?;
    let result = client.exec(&args.id, &Value::Object(body)).await.with_context(|| format!("exec in {}", args.id))?;
    let code = result.get("exitCode").and_then(Value::as_i64).unwrap_or(-1);
    if args.json {
        output::print_json(&result)?;
        return Ok(exit_status(code));
    }
    let text = |k: &str| result.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out = std::io::stdout().lock();
    out.write_all(text("stdout").as_bytes())?;
    out.flush()?;
    let mut err = std::io::stderr().lock();
    err.write_all(text("stderr").as_bytes())?;
    if result.get("truncated").and_then(Value::as_bool) == Some(true) {
        writeln!(err, "dagger-sandbox: output was truncated (the middle was dropped)")?;
    }
    Ok(exit_status(code))
}

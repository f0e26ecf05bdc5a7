//! Running commands: in the foreground (output streamed as progress notifications, cancellable)
//! or in the background (a handle; output read with `service_logs`), and reading service logs.

use std::collections::BTreeMap;
use std::time::Duration;

use dagger_sandbox::{ExecOptions, OutputChunk};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::check_env;
use crate::error::{Out, ToolError, ToolResult};
use crate::logring::{LogLine, LOG_LINES_KEPT};
use crate::server::{cap, McpServer, Progress, OUTPUT_CAP_BYTES};

/// Longest timeout a command may ask for (a day).
const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
/// Lines `service_logs` returns unless `tail` says otherwise.
const DEFAULT_TAIL: usize = 200;

/// Arguments of `sandbox_exec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The command, run with `sh -c`.
    pub command: String,
    /// Working directory (default: the sandbox's).
    pub cwd: Option<String>,
    /// Variables for this command only.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Time limit in milliseconds (default: the sandbox's, 10 minutes); past it the command is killed.
    pub timeout_ms: Option<u64>,
    /// Run in the background and return a handle at once; read its output and exit code with
    /// `service_logs` and that handle.
    #[serde(default)]
    pub background: bool,
}

/// The output of `sandbox_exec`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecOut {
    /// The exit code (absent for a background command).
    pub exit_code: Option<i64>,
    /// Standard output (head and tail when over the cap).
    pub stdout: String,
    /// Standard error (head and tail when over the cap).
    pub stderr: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Whether output was cut (here or by the sandbox's own cap).
    pub truncated: bool,
    /// The most bytes of each stream a result carries.
    pub output_cap_bytes: usize,
    /// The handle of a background command.
    pub handle: Option<String>,
}

/// Arguments of `service_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// A background command's handle; without it, the sandbox's service.
    pub handle: Option<String>,
    /// At most this many of the newest lines (default 200).
    pub tail: Option<usize>,
    /// Only lines with `seq >= since`: pass the `next` of the previous call to follow.
    pub since: Option<u64>,
}

/// The output of `service_logs`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsOut {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The cursor for the next call's `since`.
    pub next: u64,
    /// For a background command: whether it still runs.
    pub running: Option<bool>,
    /// For a background command that ended: its exit code.
    pub exit_code: Option<i64>,
    /// For a background command that could not finish: why (code and message).
    pub error: Option<String>,
    /// Lines kept per log; older ones are dropped.
    pub lines_kept: usize,
}

fn exec_options(args: &ExecArgs) -> Result<ExecOptions, ToolError> {
    check_env(&args.env)?;
    if args.command.trim().is_empty() {
        return Err(ToolError::invalid("command is empty"));
    }
    let mut opts = ExecOptions::new();
    if let Some(cwd) = &args.cwd {
        opts = opts.cwd(cwd.clone());
    }
    for (k, v) in &args.env {
        opts = opts.env(k.clone(), v.clone());
    }
    if let Some(ms) = args.timeout_ms {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(ToolError::invalid(format!("timeoutMs must be 1-{MAX_TIMEOUT_MS}, got {ms}")));
        }
        opts = opts.timeout(Duration::from_millis(ms));
    }
    Ok(opts)
}

#[tool_router(router = exec_router, vis = "pub(crate)")]
impl McpServer {
    /// Runs a shell command in a sandbox and returns its exit code and output. Output arrives as
    /// progress notifications while it runs (when the call has a progress token); cancelling the
    /// call kills the command. With `background: true` it returns a handle at once.
    #[tool(output_schema = schema_for_output::<ExecOut>())]
    async fn sandbox_exec(
        &self,
        Parameters(args): Parameters<ExecArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ExecOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let opts = exec_options(&args)?;
        if args.background {
            let handle = self.hub.spawn_job(self.owner(&ctx), sb, args.command.clone(), opts);
            return Ok(Out {
                text: format!("started in the background as {handle}; read its output with service_logs"),
                value: ExecOut {
                    exit_code: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    duration_ms: 0,
                    truncated: false,
                    output_cap_bytes: OUTPUT_CAP_BYTES,
                    handle: Some(handle),
                },
            });
        }
        let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
        let opts = opts.output(tx).cancel(ctx.ct.clone());
        let mut progress = Progress::of(&ctx);
        let forward = async {
            while let Some(chunk) = rx.recv().await {
                progress.say(String::from_utf8_lossy(&chunk.data).into_owned()).await;
            }
        };
        let (result, ()) = tokio::join!(sb.exec(&args.command, opts), forward);
        let r = result?;
        let (stdout, cut_out) = cap(r.stdout);
        let (stderr, cut_err) = cap(r.stderr);
        let value = ExecOut {
            exit_code: Some(r.exit_code),
            stdout,
            stderr,
            duration_ms: r.duration_ms,
            truncated: r.truncated || cut_out || cut_err,
            output_cap_bytes: OUTPUT_CAP_BYTES,
            handle: None,
        };
        let mut text = format!("exit code {} in {} ms", r.exit_code, r.duration_ms);
        if !value.stdout.is_empty() {
            text.push_str(&format!("\n--- stdout ---\n{}", value.stdout));
        }
        if !value.stderr.is_empty() {
            text.push_str(&format!("\n--- stderr ---\n{}", value.stderr));
        }
        if value.truncated {
            text.push_str(&format!("\n(output truncated: at most {OUTPUT_CAP_BYTES} bytes per stream)"));
        }
        Ok(Out { text, value })
    }

    /// Reads the output of a sandbox's service, or of a background command (`handle`), with its
    /// exit code once it ended.
    #[tool(output_schema = schema_for_output::<LogsOut>())]
    async fn service_logs(&self, Parameters(args): Parameters<LogsArgs>) -> ToolResult<LogsOut> {
        let tail = args.tail.unwrap_or(DEFAULT_TAIL).min(LOG_LINES_KEPT);
        let since = args.since.unwrap_or(0);
        self.sandbox(&args.sandbox)?;
        let mut value =
            LogsOut { lines: vec![], next: 0, running: None, exit_code: None, error: None, lines_kept: LOG_LINES_KEPT };
        if let Some(handle) = &args.handle {
            let job = self.hub.job(self.scope.id(), handle)?;
            if job.sandbox != args.sandbox {
                return Err(ToolError::new("NOT_FOUND", format!("{handle} runs in sandbox {}", job.sandbox)));
            }
            (value.lines, value.next) = job.logs.read(since, tail);
            let end = job.end.lock().unwrap_or_else(|p| p.into_inner()).clone();
            value.running = Some(end.is_none());
            if let Some(end) = end {
                value.exit_code = Some(end.exit_code);
                value.error = end.error.map(|e| e.to_string());
            }
        } else if let Some(held) = self.hub.held(self.scope.id(), &args.sandbox) {
            (value.lines, value.next) = held.logs.read(since, tail);
        } else if let Some(read) = self.hub.keeper.as_ref().and_then(|k| k.logs(&args.sandbox, since, tail)) {
            (value.lines, value.next) = read;
        }
        let mut text: String = value.lines.iter().map(|l| format!("[{}] {}\n", l.stream, l.text)).collect();
        match (value.running, value.exit_code) {
            (Some(true), _) => text.push_str("(still running)"),
            (Some(false), Some(code)) => text.push_str(&format!("(exited with {code})")),
            _ if text.is_empty() => text.push_str("(no output)"),
            _ => {}
        }
        if let Some(e) = &value.error {
            text.push_str(&format!(" {e}"));
        }
        Ok(Out { text, value })
    }
}

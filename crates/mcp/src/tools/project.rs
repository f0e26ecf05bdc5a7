//! Tools that touch the host: import and export between a sandbox and host paths, and
//! validate_project (dagger-sandbox-validate, the same run and verdict as `dagger-sandbox validate`).
//! Every host path is checked against the roots first.

use std::sync::Arc;
use std::time::Duration;

use dagger_sandbox::{EntryKind, RefreshOptions, SandboxConfig};
use dagger_sandbox_validate::{validate, Plan, Progress as VProgress, Report, ValidateOptions, EXCLUDE};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::JsonObject;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::files::entry;
use crate::error::{Out, ToolError, ToolResult};
use crate::server::{McpServer, Progress};

/// Arguments of `sandbox_import`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// A host file or directory inside the roots (absolute).
    pub host_path: String,
    /// Where it goes in the sandbox (default: the working directory for a directory, the file's
    /// name there for a file).
    pub path: Option<String>,
}

/// Arguments of `sandbox_export`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The sandbox file or directory to copy out.
    pub path: String,
    /// Where it goes on the host, inside the roots (absolute; created if missing, files there overwritten).
    pub host_path: String,
}

/// The output of `sandbox_import` and `sandbox_export`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferOut {
    /// The host path, resolved.
    pub host_path: String,
    /// The sandbox path.
    pub path: String,
    /// `file` or `directory`.
    pub kind: String,
}

/// Arguments of `validate_project`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateArgs {
    /// The project directory on the host, inside the roots (absolute).
    pub path: String,
    /// The install command (default `npm install` for a package.json project; "" skips it).
    pub install: Option<String>,
    /// The test command (default `npm test` for a package.json project; "" skips it).
    pub test: Option<String>,
    /// The image (default: the server's `--image`).
    pub image: Option<String>,
    /// Time limit of each step in seconds (default 600).
    pub step_timeout_seconds: Option<u64>,
}

/// The output schema of `validate_project`: the JSON `dagger-sandbox validate --json` prints.
fn report_schema() -> Arc<JsonObject> {
    let step = serde_json::json!({
        "type": "object",
        "required": ["name", "command", "exitCode", "durationMs", "timedOut", "stdoutTail", "stderrTail"],
        "properties": {
            "name": {"type": "string", "description": "install or test"},
            "command": {"type": "string"},
            "exitCode": {"type": "integer", "description": "-1 when it timed out"},
            "durationMs": {"type": "integer"},
            "timedOut": {"type": "boolean"},
            "stdoutTail": {"type": "string", "description": "the last 40 lines / 4000 characters"},
            "stderrTail": {"type": "string"}
        }
    });
    let schema = serde_json::json!({
        "type": "object",
        "required": ["passed", "backend", "isolation", "steps"],
        "properties": {
            "passed": {"type": "boolean", "description": "every step ran and exited 0"},
            "backend": {"type": "string"},
            "isolation": {"type": "string"},
            "image": {"type": ["string", "null"]},
            "fallbackReason": {"type": ["string", "null"]},
            "steps": {"type": "array", "items": step},
            "nodeModulesCache": {"type": "string", "description": "the node_modules store: hit, miss or off"},
            "warnings": {"type": "array", "items": {"type": "string"}, "description": "what went wrong without changing the verdict (a cache that could not be used)"}
        }
    });
    match schema {
        serde_json::Value::Object(m) => Arc::new(m),
        _ => unreachable!("a JSON object literal"),
    }
}

fn report_text(r: &Report) -> String {
    let mut t =
        format!("{} ({} backend, {} isolation)\n", if r.passed { "PASSED" } else { "FAILED" }, r.backend, r.isolation);
    for s in &r.steps {
        t.push_str(&format!(
            "{}: `{}` exit {}{} in {} ms\n",
            s.name,
            s.command,
            s.exit_code,
            if s.timed_out { " (timed out)" } else { "" },
            s.duration_ms
        ));
    }
    if let Some(f) = r.failed_step() {
        t.push_str(&format!(
            "--- {} stdout (tail) ---\n{}\n--- {} stderr (tail) ---\n{}\n",
            f.name, f.stdout_tail, f.name, f.stderr_tail
        ));
    }
    t
}

#[tool_router(router = project_router, vis = "pub(crate)")]
impl McpServer {
    /// Copies a host file or directory (inside the roots) into a sandbox; node_modules and .git are
    /// left out of directories.
    #[tool(output_schema = schema_for_output::<TransferOut>())]
    async fn sandbox_import(
        &self,
        Parameters(args): Parameters<ImportArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<TransferOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let host = self.roots(&ctx).await.check_existing(&args.host_path)?;
        let (path, kind) = if host.is_dir() {
            let dest = args.path.unwrap_or_else(|| sb.workdir());
            sb.refresh_from_host(&host, &dest, RefreshOptions::exclude(EXCLUDE)).await?;
            (dest, "directory")
        } else {
            // Streamed from the host file, whatever its size.
            let name = host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let dest = args.path.unwrap_or(name);
            sb.write_file_from_host(&dest, &host, dagger_sandbox::DEFAULT_FILE_MODE).await?;
            (dest, "file")
        };
        let host_path = host.display().to_string();
        Ok(Out {
            text: format!("imported {kind} {host_path} into {path} of sandbox {}", args.sandbox),
            value: TransferOut { host_path, path, kind: kind.into() },
        })
    }

    /// Copies a sandbox file or directory out to a host path inside the roots; anything else is refused.
    #[tool(output_schema = schema_for_output::<TransferOut>())]
    async fn sandbox_export(
        &self,
        Parameters(args): Parameters<ExportArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<TransferOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let host = self.roots(&ctx).await.check(&args.host_path)?;
        let e = entry(&sb, &args.path).await?;
        let kind = if e.kind == EntryKind::Dir {
            sb.export_directory(&args.path, &host).await?;
            "directory"
        } else {
            // Streamed to the host file, whatever its size (core lands it atomically).
            if let Some(parent) = host.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| ToolError::invalid(format!("{}: {e}", parent.display())))?;
            }
            sb.read_file_to_host(&args.path, &host).await?;
            "file"
        };
        let host_path = host.display().to_string();
        Ok(Out {
            text: format!("exported {kind} {} of sandbox {} to {host_path}", args.path, args.sandbox),
            value: TransferOut { host_path, path: args.path, kind: kind.into() },
        })
    }

    /// Validates a host project (inside the roots) as `dagger-sandbox validate` does: copies it into
    /// a fresh sandbox without node_modules and .git, runs install and test, removes the sandbox,
    /// and returns the verdict with each step's exit code, duration and output tail. Step output
    /// arrives as progress notifications; cancelling stops it and removes the sandbox.
    #[tool(output_schema = report_schema())]
    async fn validate_project(
        &self,
        Parameters(args): Parameters<ValidateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<Report> {
        let dir = self.roots(&ctx).await.check_existing(&args.path)?;
        let plan = Plan::for_project(&dir, args.install.as_deref(), args.test.as_deref())?;
        let o = &self.hub.options;
        let mut config = SandboxConfig::new().backend(o.backend).image(args.image.unwrap_or_else(|| o.image.clone()));
        if let Some(owner) = &o.owner {
            config = config.owner(owner.clone());
        }
        let mut opts = ValidateOptions { cancel: ctx.ct.child_token(), ..ValidateOptions::default() };
        if let Some(s) = args.step_timeout_seconds {
            if s == 0 || s > 24 * 3600 {
                return Err(ToolError::invalid(format!("stepTimeoutSeconds must be 1-86400, got {s}")));
            }
            opts.step_timeout = Duration::from_secs(s);
        }
        let (tx, mut rx) = mpsc::channel::<VProgress>(256);
        opts.progress = Some(tx);
        let mut progress = Progress::of(&ctx);
        let forward = async {
            while let Some(p) = rx.recv().await {
                let msg = match p {
                    VProgress::Creating => "creating the sandbox".to_string(),
                    VProgress::Created { backend, isolation, .. } => format!("sandbox ready ({backend}, {isolation})"),
                    VProgress::Copying => "copying the project in".to_string(),
                    VProgress::StepStarted { name, command } => format!("{name}: {command}"),
                    VProgress::Output(c) => String::from_utf8_lossy(&c.data).into_owned(),
                    VProgress::StepFinished(s) => format!("{} exited {} in {} ms", s.name, s.exit_code, s.duration_ms),
                };
                progress.say(msg).await;
            }
        };
        let (report, ()) = tokio::join!(validate(config, &plan, opts), forward);
        let report = report?;
        Ok(Out { text: report_text(&report), value: report })
    }
}

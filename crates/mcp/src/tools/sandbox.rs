//! Sandbox lifecycle tools: create, list, close, fork.

use std::collections::BTreeMap;
use std::sync::Arc;

use dagger_sandbox::{BackendChoice, OutputChunk, Sandbox, SandboxConfig, ServeOptions};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::check_env;
use crate::error::{Out, ToolError, ToolResult};
use crate::hub::KeepSpec;
use crate::logring::LogRing;
use crate::server::McpServer;

/// Longest ttl a sandbox may ask for (a year), as the daemon's REST API.
const MAX_TTL_SECONDS: u64 = 366 * 24 * 3600;
/// The ttl of a sandbox made by a stateless (2026-07-28) HTTP request that names none.
const STATELESS_TTL_SECONDS: u64 = 3600;

/// Arguments of `sandbox_create`; every field is optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateArgs {
    /// The container image (default: the server's `--image`).
    pub image: Option<String>,
    /// A template instead of an image: `node` or `python` (or a daemon template).
    pub template: Option<String>,
    /// Environment variables for every command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Network access (default true).
    pub network: Option<bool>,
    /// Container ports to forward to 127.0.0.1; needs `command`.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// A command run as a service (a dev server); its output is read with `service_logs`.
    pub command: Option<String>,
    /// Keep the sandbox this many seconds after the connection ends (daemon `/mcp` only: the daemon
    /// reaps it then). Without it the sandbox closes with the connection.
    pub ttl_seconds: Option<u64>,
}

/// Arguments naming one sandbox.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxArg {
    /// The sandbox id (from `sandbox_create` or `sandbox_list`).
    pub sandbox: String,
}

/// A forwarded port.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    /// The port inside the sandbox.
    pub container_port: u16,
    /// `http://127.0.0.1:<host port>`.
    pub url: String,
}

/// A sandbox as tools describe it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxView {
    /// Its id, for the other tools.
    pub id: String,
    /// `docker`, `dagger` or `local`.
    pub backend: String,
    /// `container` or `process`.
    pub isolation: String,
    /// Its image, if the backend uses one.
    pub image: Option<String>,
    /// The working directory relative paths start from.
    pub workdir: String,
    /// Forwarded ports.
    pub ports: Vec<PortView>,
    /// `connection` (closed when this connection ends) or `ttl` (a daemon session, reaped by the daemon).
    pub lifetime: String,
}

impl SandboxView {
    /// The view of `sb`.
    pub fn of(sb: &Sandbox, kept: bool) -> Self {
        SandboxView {
            id: sb.id().to_string(),
            backend: sb.backend().to_string(),
            isolation: sb.isolation().to_string(),
            image: sb.image().map(str::to_string),
            workdir: sb.workdir(),
            ports: sb.ports().into_iter().map(|p| PortView { container_port: p.container_port, url: p.url }).collect(),
            lifetime: if kept { "ttl" } else { "connection" }.to_string(),
        }
    }

    fn text(&self, verb: &str) -> String {
        let ports: Vec<String> = self.ports.iter().map(|p| format!("{} -> {}", p.container_port, p.url)).collect();
        format!(
            "{verb} sandbox {} ({} backend, {} isolation, image {}, workdir {}{}); lifetime: {}",
            self.id,
            self.backend,
            self.isolation,
            self.image.as_deref().unwrap_or("-"),
            self.workdir,
            if ports.is_empty() { String::new() } else { format!(", ports {}", ports.join(", ")) },
            self.lifetime
        )
    }
}

/// The output of `sandbox_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOut {
    /// The sandboxes this connection can use.
    pub sandboxes: Vec<SandboxView>,
}

/// The output of `sandbox_close`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CloseOut {
    /// The sandbox that was closed.
    pub id: String,
    /// Always true.
    pub closed: bool,
}

impl McpServer {
    fn config(&self, args: &CreateArgs) -> Result<SandboxConfig, ToolError> {
        let o = &self.hub.options;
        let mut cfg = SandboxConfig::new().backend(o.backend);
        if let Some(owner) = &o.owner {
            cfg = cfg.owner(owner.clone());
        }
        cfg = match (&args.image, &args.template) {
            (Some(_), Some(_)) => return Err(ToolError::invalid("give an image or a template, not both")),
            (Some(image), None) => cfg.image(image.clone()),
            (None, Some(t)) => cfg.template(t.clone()),
            (None, None) => cfg.image(o.image.clone()),
        };
        for (k, v) in &args.env {
            cfg = cfg.env(k.clone(), v.clone());
        }
        for p in &args.ports {
            cfg = cfg.port(*p);
        }
        if let Some(n) = args.network {
            cfg = cfg.network(n);
        }
        Ok(cfg)
    }

    async fn create_held(&self, args: CreateArgs) -> Result<SandboxView, ToolError> {
        let cfg = self.config(&args)?;
        let sb = Sandbox::create(cfg).await?;
        let logs = Arc::new(LogRing::default());
        let service = match &args.command {
            None => None,
            Some(cmd) => {
                let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
                let sink = logs.clone();
                tokio::spawn(async move {
                    while let Some(c) = rx.recv().await {
                        sink.push(&c);
                    }
                    sink.flush();
                });
                match sb.serve(cmd, ServeOptions::new().output(tx)).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        let _ = sb.close().await;
                        return Err(e.into());
                    }
                }
            }
        };
        let view = SandboxView::of(&sb, false);
        self.hub.hold(self.scope.id(), sb, service, logs);
        Ok(view)
    }
}

#[tool_router(router = sandbox_router, vis = "pub(crate)")]
impl McpServer {
    /// Creates a sandbox: an isolated container with a working directory, from an image or a
    /// template, optionally with a service command and forwarded ports.
    #[tool(output_schema = schema_for_output::<SandboxView>())]
    async fn sandbox_create(
        &self,
        Parameters(args): Parameters<CreateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SandboxView> {
        check_env(&args.env)?;
        if !args.ports.is_empty() && args.command.is_none() {
            return Err(ToolError::invalid("ports need a command that serves them"));
        }
        if let Some(t) = args.ttl_seconds {
            if t == 0 || t > MAX_TTL_SECONDS {
                return Err(ToolError::invalid(format!("ttlSeconds must be 1-{MAX_TTL_SECONDS}, got {t}")));
            }
        }
        let ttl = match (args.ttl_seconds, self.stateless(&ctx)) {
            (Some(t), _) => Some(t),
            (None, true) => Some(STATELESS_TTL_SECONDS),
            (None, false) => None,
        };
        let view = match (ttl, &self.hub.keeper) {
            (None, _) => self.create_held(args).await?,
            (Some(ttl_seconds), Some(keeper)) => {
                let backend = match self.hub.options.backend {
                    BackendChoice::Auto => None,
                    BackendChoice::Docker => Some("docker".to_string()),
                    BackendChoice::Dagger => Some("dagger".to_string()),
                    BackendChoice::Local => Some("local".to_string()),
                };
                let image = match (&args.image, &args.template) {
                    (None, None) => Some(self.hub.options.image.clone()),
                    (i, _) => i.clone(),
                };
                if args.network == Some(false) {
                    return Err(ToolError::invalid("network: false is not available for daemon sessions (ttlSeconds)"));
                }
                let spec = KeepSpec {
                    image,
                    template: args.template,
                    backend,
                    env: args.env,
                    ports: args.ports,
                    command: args.command,
                    ttl_seconds,
                };
                SandboxView::of(&keeper.create(spec).await?, true)
            }
            (Some(_), None) => return Err(ToolError::invalid(
                "ttlSeconds keeps a sandbox after the connection ends, which needs the daemon (its /mcp endpoint); \
                     on stdio a sandbox closes with the connection, so leave ttlSeconds out",
            )),
        };
        Ok(Out { text: view.text("created"), value: view })
    }

    /// Lists the sandboxes this connection can use.
    #[tool(output_schema = schema_for_output::<ListOut>())]
    async fn sandbox_list(&self) -> ToolResult<ListOut> {
        let sandboxes: Vec<SandboxView> =
            self.hub.list(self.scope.id()).iter().map(|(sb, kept)| SandboxView::of(sb, *kept)).collect();
        let text = if sandboxes.is_empty() {
            "no sandboxes".to_string()
        } else {
            sandboxes.iter().map(|s| s.text("-")).collect::<Vec<_>>().join("\n")
        };
        Ok(Out { text, value: ListOut { sandboxes } })
    }

    /// Closes a sandbox: stops its commands and service and removes it with its files.
    #[tool(output_schema = schema_for_output::<CloseOut>())]
    async fn sandbox_close(&self, Parameters(args): Parameters<SandboxArg>) -> ToolResult<CloseOut> {
        self.hub.close(self.scope.id(), &args.sandbox).await?;
        Ok(Out { text: format!("closed sandbox {}", args.sandbox), value: CloseOut { id: args.sandbox, closed: true } })
    }

    /// Forks a sandbox: a new sandbox with a copy of its files and settings (the original is
    /// untouched). The fork belongs to this connection.
    #[tool(output_schema = schema_for_output::<SandboxView>())]
    async fn sandbox_fork(
        &self,
        Parameters(args): Parameters<SandboxArg>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SandboxView> {
        let sb = self.sandbox(&args.sandbox)?;
        let fork = sb.fork().await?;
        let owner = self.owner(&ctx);
        let mut view = SandboxView::of(&fork, false);
        if owner == crate::hub::SHARED_SCOPE {
            view.lifetime = "ttl".into();
        }
        self.hub.hold(owner, fork, None, Arc::new(LogRing::default()));
        Ok(Out { text: format!("{} from {}", view.text("forked"), args.sandbox), value: view })
    }
}

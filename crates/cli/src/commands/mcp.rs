//! `mcp`: the MCP server on stdio, for agents that start their tools as processes (Claude Code,
//! Cursor, VS Code, Codex). Stdout carries protocol messages only; logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dagger_sandbox::BackendChoice;
use dagger_sandbox_mcp::{McpOptions, Roots};

/// Options of `mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// A host directory import, export and validate_project may touch (repeatable); the client's
    /// declared roots are added to these
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Image of sandboxes created without one
    #[arg(long, env = dagger_sandbox_mcp::ENV_IMAGE, default_value = dagger_sandbox::DEFAULT_IMAGE)]
    image: String,
    /// Backend: auto, docker, dagger or local
    #[arg(long, env = dagger_sandbox_mcp::ENV_BACKEND, default_value = "auto")]
    backend: String,
}

/// Serves until the client closes stdin, then closes every sandbox this connection made.
pub async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    let backend: BackendChoice = args.backend.parse()?;
    let roots = Roots::from_dirs(&args.roots)?;
    let options = McpOptions { image: args.image, backend, roots, ..McpOptions::default() };
    dagger_sandbox_mcp::serve_stdio(options).await?;
    Ok(ExitCode::SUCCESS)
}

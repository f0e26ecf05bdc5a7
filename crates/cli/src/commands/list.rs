//! `list|ls`: the sessions as an aligned table, or the API's objects with `--json`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{cell, field, status_text};
use crate::client::Client;
use crate::output::{self, Table};

/// Options of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include terminated sessions
    #[arg(long, short = 'a')]
    all: bool,
    /// Print `{"sandboxes": [...]}` as the REST API does
    #[arg(long)]
    json: bool,
}

/// Prints the sessions, newest first.
pub async fn run(args: ListArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    let sessions = client.list(args.all).await?;
    if args.json {
        output::print_json(&json!({ "sandboxes": sessions }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if sessions.is_empty() {
        eprintln!("no sandboxes{}", if args.all { "" } else { " (--all shows terminated ones)" });
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(["ID", "STATUS", "BACKEND", "IMAGE", "PROJECT", "URL", "CREATED", "EXPIRES"]);
    for s in &sessions {
        let expires = if field(s, "status") == Some("terminated") {
            "-".to_string()
        } else {
            output::relative(field(s, "expiresAt"))
        };
        t.row([
            cell(s, "id"),
            status_text(s),
            cell(s, "backend"),
            output::ellipsize(&cell(s, "image"), 40),
            cell(s, "projectId"),
            cell(s, "hostUrl"),
            output::relative(field(s, "createdAt")),
            expires,
        ]);
    }
    out!("{}", t.render())?;
    Ok(ExitCode::SUCCESS)
}

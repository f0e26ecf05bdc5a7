//! `pause` and `resume`: stop a session's sandbox keeping its files (`POST .../stop`), and start
//! it again (`POST .../resume`). Named `pause` because `stop` already ends a session for good.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::status_text;
use crate::client::Client;
use crate::output;

/// Options of `pause` and `resume`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The session id
    #[arg(value_parser = super::session_id)]
    id: String,
    /// Print the session as JSON
    #[arg(long)]
    json: bool,
}

/// Sends `action` (`stop` or `resume`) for the session and prints it.
pub async fn run(args: PauseArgs, action: &str, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    let doing = if action == "stop" { "pausing" } else { "resuming" };
    let session = client.session_post(&args.id, action).await.with_context(|| format!("{doing} {}", args.id))?;
    if args.json {
        output::print_json(&session)?;
    } else {
        outln!("{}  {}", args.id, status_text(&session))?;
    }
    Ok(ExitCode::SUCCESS)
}

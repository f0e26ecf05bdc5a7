//! `stop`: ends one session; the daemon removes its engine resources before it answers.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::status_text;
use crate::client::Client;
use crate::output;

/// Options of `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The session id
    #[arg(value_parser = super::session_id)]
    id: String,
    /// Print the (terminated) session as JSON
    #[arg(long)]
    json: bool,
}

/// Stops the session and prints it.
pub async fn run(args: StopArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    let session = client.stop(&args.id).await.with_context(|| format!("stopping {}", args.id))?;
    if args.json {
        output::print_json(&session)?;
    } else {
        outln!("{}  {}", args.id, status_text(&session))?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `clean`: stops every session of this state dir's daemon.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::output;

/// Stops every non-terminated session and prints how many.
pub async fn run(json: bool, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    let spinner = output::Spinner::start("stopping every sandbox");
    let result = client.clean().await;
    spinner.finish().await;
    let answer = result?;
    if json {
        output::print_json(&answer)?;
    } else {
        let n = answer.get("stopped").and_then(Value::as_u64).unwrap_or(0);
        outln!("stopped {n} sandbox{}", if n == 1 { "" } else { "es" })?;
    }
    Ok(ExitCode::SUCCESS)
}

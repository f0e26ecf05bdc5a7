//! `snapshot create|ls|inspect|rm`: snapshots of sessions, kept until deleted (stop and clean keep
//! them). `create --from-snapshot REF` starts a session from one.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{cell, field};
use crate::client::Client;
use crate::output::{self, Table};

/// Options of `snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCmd,
}

#[derive(Debug, Subcommand)]
enum SnapshotCmd {
    /// Save a session's files, env and workdir (secret env values are kept by name only)
    Create {
        /// The session id
        #[arg(value_parser = super::session_id)]
        id: String,
        /// A unique name to refer to it by
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// Print the snapshot as JSON
        #[arg(long)]
        json: bool,
    },
    /// List snapshots, oldest first
    #[command(visible_alias = "list")]
    Ls {
        /// Print `{"snapshots": [...]}` as the REST API does
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot (by id or name) as JSON
    Inspect {
        /// The snapshot's id or name
        reference: String,
    },
    /// Delete snapshots and their data (sandboxes made from them keep running)
    #[command(visible_alias = "delete")]
    Rm {
        /// Snapshot ids or names
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        references: Vec<String>,
        /// Delete every snapshot
        #[arg(long)]
        all: bool,
        /// Print `{"deleted": [...]}`
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `snapshot` subcommand.
pub async fn run(args: SnapshotArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    match args.command {
        SnapshotCmd::Create { id, name, json } => {
            let spinner = output::Spinner::start(format!("taking a snapshot of {id}"));
            let result = client.snapshot(&id, name.as_deref()).await;
            spinner.finish().await;
            let snap = result.with_context(|| format!("taking a snapshot of {id}"))?;
            if json {
                output::print_json(&snap)?;
            } else {
                outln!("{}", cell(&snap, "id"))?;
            }
        }
        SnapshotCmd::Ls { json } => {
            let snaps = client.snapshots().await?;
            if json {
                output::print_json(&json!({ "snapshots": snaps }))?;
            } else if snaps.is_empty() {
                eprintln!("no snapshots");
            } else {
                out!("{}", table(&snaps).render())?;
            }
        }
        SnapshotCmd::Inspect { reference } => {
            let snap =
                client.get_snapshot(&reference).await.with_context(|| format!("reading snapshot {reference}"))?;
            output::print_json(&snap)?;
        }
        SnapshotCmd::Rm { references, all, json } => {
            let references: Vec<String> =
                if all { client.snapshots().await?.iter().map(|s| cell(s, "id")).collect() } else { references };
            let mut deleted: Vec<Value> = Vec::new();
            for r in &references {
                let snap = client.delete_snapshot(r).await.with_context(|| format!("deleting snapshot {r}"))?;
                if !json {
                    outln!("{}  deleted", cell(&snap, "id"))?;
                }
                deleted.push(snap);
            }
            if json {
                output::print_json(&json!({ "deleted": deleted }))?;
            } else if all && deleted.is_empty() {
                eprintln!("no snapshots");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(snaps: &[Value]) -> Table {
    let mut t = Table::new(["ID", "NAME", "BACKEND", "SIZE", "WORKDIR", "SOURCE", "CREATED"]);
    for s in snaps {
        let size = s.get("size").and_then(Value::as_u64).map(human_bytes).unwrap_or_else(|| "-".into());
        t.row([
            cell(s, "id"),
            cell(s, "name"),
            cell(s, "backend"),
            size,
            cell(s, "workdir"),
            cell(s, "source"),
            output::relative(field(s, "createdAt")),
        ]);
    }
    t
}

/// `1.5 MB` style sizes for the table.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
    }
}

//! `cache ls|prune`: this user's dependency caches (Docker volumes and local directories) that
//! `validate` and `caches: true` sandboxes share.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use dagger_sandbox::caches::{list_caches, prune_caches};
use dagger_sandbox::CacheKind;

use crate::client::CodedError;
use crate::output::{self, Table};

/// Options of `cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// List the caches with their sizes
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove caches no running sandbox mounts (all kinds, or those named)
    Prune {
        /// Kinds to remove: npm, pnpm, yarn, pip, node-modules [default: all]
        kinds: Vec<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

fn coded(e: dagger_sandbox::Error) -> anyhow::Error {
    CodedError::new(e.code().as_str(), e.to_string()).into()
}

fn human_bytes(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        Some(n) if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        Some(n) => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}

/// Runs `cache ls` or `cache prune`.
pub async fn run(args: CacheArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        CacheAction::Ls { json } => {
            let caches = list_caches().await.map_err(coded)?;
            if json {
                output::print_json(&caches)?;
            } else {
                let mut t = Table::new(["BACKEND", "KIND", "SIZE", "NAME"]);
                for c in &caches {
                    t.row([c.backend.clone(), c.kind.clone(), human_bytes(c.size), c.name.clone()]);
                }
                out!("{}", t.render())?;
            }
        }
        CacheAction::Prune { kinds, json } => {
            let kinds = kinds.iter().map(|k| k.parse::<CacheKind>()).collect::<Result<Vec<_>, _>>().map_err(coded)?;
            let report = prune_caches(&kinds).await.map_err(coded)?;
            if json {
                output::print_json(&report)?;
            } else {
                for r in &report.removed {
                    outln!("removed {r}")?;
                }
                for r in &report.in_use {
                    outln!("kept {r} (a running sandbox mounts it)")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

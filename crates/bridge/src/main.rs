//! `dagger-sandbox-bridge`: the sandbox API as JSON-RPC 2.0 over stdio, one JSON message per line.
//! Stdout carries protocol messages only; logs go to stderr. The protocol is in
//! docs/bridge-protocol.md.

mod durable;
mod framing;
mod methods;
mod protocol;
mod server;
mod snapshots;
mod utf8;

use anyhow::{bail, Context};

/// The default longest accepted line: 64 MiB (a 48 MiB file in base64 fits).
const DEFAULT_MAX_LINE: usize = 64 * 1024 * 1024;

const USAGE: &str = "usage: dagger-sandbox-bridge [--max-line-bytes N]\n\
    Speaks JSON-RPC 2.0 over stdin/stdout, one message per line (see docs/bridge-protocol.md).\n\
    Logs go to stderr; set DAGGER_SANDBOX_LOG=info|debug for more.";

fn parse_args() -> anyhow::Result<Option<usize>> {
    let mut max_line = DEFAULT_MAX_LINE;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--version" | "-V" => {
                eprintln!("dagger-sandbox-bridge {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--help" | "-h" => {
                eprintln!("{USAGE}");
                return Ok(None);
            }
            "--max-line-bytes" => {
                let v = args.next().context("--max-line-bytes needs a number")?;
                max_line = v.parse().with_context(|| format!("--max-line-bytes: not a number: {v}"))?;
                if max_line < 1024 {
                    bail!("--max-line-bytes must be at least 1024");
                }
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(max_line))
}

fn main() -> anyhow::Result<()> {
    let Some(max_line) = parse_args()? else { return Ok(()) };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAGGER_SANDBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let stdin = tokio::io::BufReader::with_capacity(256 * 1024, tokio::io::stdin());
        server::run(stdin, tokio::io::stdout(), max_line).await;
    });
    // stdin's reader thread may still be blocked in read(); everything is closed and flushed.
    std::process::exit(0);
}

//! `logs`: a session's output from the daemon's server-sent events, stdout to stdout and stderr to
//! stderr, optionally following until the session ends.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;

use crate::client::{Client, SseParser};

/// Options of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The session id
    #[arg(value_parser = super::session_id)]
    id: String,
    /// Keep printing new output until the session ends (Ctrl-C to stop watching)
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print each event as one JSON line: `{"event": "log", "stream", "text", "at"}`
    #[arg(long)]
    json: bool,
}

/// Prints the session's output.
pub async fn run(args: LogsArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = Client::connect(state_dir).await?;
    let resp = client.logs(&args.id, args.follow).await.with_context(|| format!("reading the logs of {}", args.id))?;
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::default();
    let mut ended: Option<Value> = None;
    'outer: loop {
        let chunk = tokio::select! {
            c = body.next() => c,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(chunk) = chunk else { break };
        let chunk = chunk.context("reading the log stream")?;
        for ev in parser.feed(&chunk) {
            let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data.clone()));
            if args.json {
                let mut line = serde_json::Map::new();
                line.insert("event".into(), Value::String(ev.event.clone()));
                if let Value::Object(m) = &data {
                    line.extend(m.clone());
                } else {
                    line.insert("data".into(), data.clone());
                }
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", Value::Object(line))?;
                out.flush()?;
            } else if ev.event == "log" {
                let text = data.get("text").and_then(Value::as_str).unwrap_or("");
                if data.get("stream").and_then(Value::as_str) == Some("stderr") {
                    let mut err = std::io::stderr().lock();
                    err.write_all(text.as_bytes())?;
                    err.flush()?;
                } else {
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
            }
            if ev.event == "end" {
                ended = Some(data);
                break 'outer;
            }
        }
    }
    if let (Some(end), false) = (ended, args.json) {
        if args.follow {
            let status = end.get("status").and_then(Value::as_str).unwrap_or("ended");
            match end.get("endedReason").and_then(Value::as_str) {
                Some(why) => eprintln!("-- session {status} ({why})"),
                None => eprintln!("-- session {status}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

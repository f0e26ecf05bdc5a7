//! `serve`: the daemon in the foreground, for systemd units, containers and debugging; the other
//! commands start the same thing in the background on their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Loopback address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// How often expired sessions are stopped (e.g. 30s, 5m)
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    reap_interval: Duration,
    /// Most sandboxes held at once; a create beyond it is refused with QUOTA_EXCEEDED (HTTP 429)
    #[arg(long, env = "DAGGER_SANDBOX_MAX_SANDBOXES", default_value_t = dagger_sandbox_server::quota::DEFAULT_MAX_SANDBOXES)]
    max_sandboxes: usize,
    /// How long a client may take to send a request's headers (e.g. 10s); idle connections close after it too
    #[arg(long, env = "DAGGER_SANDBOX_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Longest pause inside a request body before the request fails (e.g. 30s)
    #[arg(long, env = "DAGGER_SANDBOX_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// Keep N sandboxes of a template started ahead, handed out to creates of that template
    /// with no other option (repeatable; e.g. --pool node=2); wins over the template's "pool" in
    /// templates.json (node=0 turns that off)
    #[arg(long = "pool", value_name = "TEMPLATE=N", value_parser = parse_pool)]
    pools: Vec<(String, usize)>,
    /// Stop a session's sandbox (keeping its files) after this long without calls (e.g. 30m, 90s);
    /// the next call resumes it. Off by default; the TTL still ends sessions
    #[arg(long, env = "DAGGER_SANDBOX_IDLE_STOP", value_parser = humantime::parse_duration)]
    idle_stop: Option<Duration>,
}

fn parse_pool(s: &str) -> Result<(String, usize), String> {
    match s.split_once('=').map(|(t, n)| (t, n.parse::<usize>())) {
        Some((t, Ok(n))) if !t.is_empty() && n <= dagger_sandbox_server::templates::MAX_POOL => Ok((t.to_string(), n)),
        _ => Err(format!(
            "expected TEMPLATE=N with N from 0 to {}, got {s:?}",
            dagger_sandbox_server::templates::MAX_POOL
        )),
    }
}

/// Runs the daemon until SIGINT/SIGTERM, logging to stderr (filter with `RUST_LOG`, default info).
pub async fn run(args: ServeArgs, state_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    if !args.addr.ip().is_loopback() {
        anyhow::bail!(crate::client::CodedError::new(
            "INVALID_ARGUMENT",
            format!("--addr {} is not a loopback address; the daemon only listens on 127.0.0.1 or ::1", args.addr)
        ));
    }
    if args.reap_interval.is_zero() {
        anyhow::bail!(crate::client::CodedError::new("INVALID_ARGUMENT", "--reap-interval must be greater than 0"));
    }
    if args.max_sandboxes == 0 {
        anyhow::bail!(crate::client::CodedError::new("INVALID_ARGUMENT", "--max-sandboxes must be at least 1"));
    }
    if args.header_timeout.is_zero() || args.body_timeout.is_zero() {
        anyhow::bail!(crate::client::CodedError::new(
            "INVALID_ARGUMENT",
            "--header-timeout and --body-timeout must be greater than 0"
        ));
    }
    if args.idle_stop.is_some_and(|d| d.is_zero()) {
        anyhow::bail!(crate::client::CodedError::new("INVALID_ARGUMENT", "--idle-stop must be greater than 0"));
    }
    dagger_sandbox_server::run(dagger_sandbox_server::ServeOptions {
        addr: args.addr,
        state_dir,
        reap_interval: args.reap_interval,
        max_sandboxes: args.max_sandboxes,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        pools: args.pools,
        idle_stop: args.idle_stop,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

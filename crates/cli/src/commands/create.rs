//! `create`: one `POST /api/sandbox`, with a spinner while the daemon pulls an image or waits for a
//! service's ports.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use super::{cell, field, shell_join};
use crate::client::Client;
use crate::output::{self, Spinner};

/// Options of `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Named defaults (image, workdir, ports): node, python, ... (overridable in templates.json)
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
    /// Image to start from (wins over the template's)
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Project id recorded with the session
    #[arg(long, value_name = "P")]
    project: Option<String>,
    /// Lifetime before the reaper stops it (e.g. 30m, 2h) [daemon default: 1h]
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// Container port to forward to 127.0.0.1 (repeatable); needs a COMMAND to serve it
    #[arg(long = "port", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Engine to use (auto picks the strongest that answers)
    #[arg(long, value_name = "B", value_parser = ["auto", "dagger", "docker", "local"])]
    backend: Option<String>,
    /// Environment variable for the session (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Working directory inside the sandbox [default: the template's, else /app]
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// Trust these certificate authorities: host (this machine's bundle) or PEM files joined by ':'
    #[arg(long, value_name = "host|PATH", env = "DAGGER_SANDBOX_CA_CERTIFICATES")]
    ca_certificates: Option<String>,
    /// Start from a snapshot (id or name): its files, env and workdir, instead of an image
    #[arg(long, value_name = "REF", conflicts_with_all = ["image", "template"])]
    from_snapshot: Option<String>,
    /// Print the session as JSON
    #[arg(long)]
    json: bool,
    /// The service to run (with --port), after `--`
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl CreateArgs {
    /// The create request body of docs/rest-api.md; absent options are left to the daemon.
    fn body(&self) -> anyhow::Result<Value> {
        let mut b = Map::new();
        let mut put = |k: &str, v: Value| {
            b.insert(k.to_string(), v);
        };
        if let Some(t) = &self.template {
            put("template", json!(t));
        }
        if let Some(i) = &self.image {
            put("image", json!(i));
        }
        if let Some(be) = &self.backend {
            put("backend", json!(be));
        }
        if let Some(p) = &self.project {
            put("projectId", json!(p));
        }
        if let Some(ttl) = self.ttl {
            if ttl.as_secs() == 0 {
                anyhow::bail!(crate::client::CodedError::new("INVALID_ARGUMENT", "--ttl must be at least 1s"));
            }
            put("ttlSeconds", json!(ttl.as_secs()));
        }
        if !self.ports.is_empty() {
            put("ports", json!(self.ports));
        }
        if !self.command.is_empty() {
            put("command", json!(shell_join(&self.command)));
        }
        if !self.env.is_empty() {
            put("env", Value::Object(self.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect()));
        }
        if let Some(w) = &self.workdir {
            put("workingDirectory", json!(w));
        }
        if let Some(s) = &self.from_snapshot {
            put("fromSnapshot", json!(s));
        }
        if let Some(ca) = &self.ca_certificates {
            put("caCertificates", serde_json::to_value(super::ca_certificates(ca)?)?);
        }
        Ok(Value::Object(b))
    }
}

/// Creates the session and prints it.
pub async fn run(args: CreateArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let body = args.body()?;
    let client = Client::connect(state_dir).await?;
    let what = match &args.from_snapshot {
        Some(s) => format!("snapshot {s}"),
        None => args.image.clone().or(args.template.clone()).unwrap_or_else(|| "the default image".into()),
    };
    let spinner = Spinner::start(format!("creating a sandbox from {what}"));
    let result = client.create(&body).await;
    spinner.finish().await;
    let session = result.context("creating the sandbox")?;
    if args.json {
        output::print_json(&session)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", cell(&session, "id"))?;
    let mut t = output::Table::new(["", ""]);
    let backend = match field(&session, "isolation") {
        Some(iso) => format!("{} ({iso})", cell(&session, "backend")),
        None => cell(&session, "backend"),
    };
    t.row(["  backend".to_string(), backend]);
    t.row(["  image".to_string(), cell(&session, "image")]);
    if let Some(ports) = session.get("ports").and_then(Value::as_array).filter(|p| !p.is_empty()) {
        for p in ports {
            let port = p.get("containerPort").map(|v| v.to_string()).unwrap_or_default();
            t.row([format!("  port {port}"), cell(p, "url")]);
        }
    } else if field(&session, "hostUrl").is_some() {
        t.row(["  url".to_string(), cell(&session, "hostUrl")]);
    }
    t.row(["  expires".to_string(), output::relative(field(&session, "expiresAt"))]);
    out!("{}", t.render_rows())?;
    Ok(ExitCode::SUCCESS)
}

//! `doctor`: what this machine can run and where state lives, each probe bounded so a dead engine
//! turns into a line of the report instead of a hang. It never starts the daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::client;
use crate::output::{self, Table};

/// Images the repository's own tests use; reported so a test run's missing image is obvious.
const TEST_IMAGES: &[&str] = &[
    "dagger-sandbox-test/busybox:latest",
    "dagger-sandbox-test/node:latest",
    "dagger-sandbox-test/node:22",
    "dagger-sandbox-test/node:20",
];
/// How long one image lookup may take.
const IMAGE_PROBE: Duration = Duration::from_secs(3);

/// One backend's findings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackendReport {
    name: &'static str,
    available: bool,
    isolation: &'static str,
    version: Option<String>,
    detail: String,
    images: Vec<ImageReport>,
}

/// Whether one image is present in the engine (never pulled here).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageReport {
    name: String,
    present: bool,
}

/// The state dir's findings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StateReport {
    path: PathBuf,
    exists: bool,
    database: bool,
    token: bool,
}

/// The daemon's findings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DaemonReport {
    running: bool,
    addr: Option<String>,
    pid: Option<u32>,
    started_at: Option<String>,
    version: Option<String>,
    sessions: Option<u64>,
    detail: Option<String>,
}

/// Everything `doctor --json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    backends: Vec<BackendReport>,
    state_dir: StateReport,
    daemon: DaemonReport,
    templates: Vec<TemplateReport>,
    templates_error: Option<String>,
}

/// One template as sessions and `validate` would use it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateReport {
    name: String,
    image: String,
    working_directory: String,
    ports: Vec<u16>,
}

async fn docker_report(template_images: Vec<String>) -> BackendReport {
    let mut r = BackendReport {
        name: "docker",
        available: false,
        isolation: "container",
        version: None,
        detail: String::new(),
        images: Vec::new(),
    };
    match dagger_sandbox::engines::docker_available().await {
        Err(why) => r.detail = why,
        Ok(info) => {
            r.available = true;
            r.version = Some(info.version);
            r.detail = format!("API {}", info.api_version);
            if let Ok(docker) = bollard::Docker::connect_with_defaults() {
                let mut names = template_images;
                names.extend(TEST_IMAGES.iter().map(|s| s.to_string()));
                names.dedup();
                for name in names {
                    let probe = tokio::time::timeout(IMAGE_PROBE, docker.inspect_image(&name)).await;
                    r.images.push(ImageReport { name, present: matches!(probe, Ok(Ok(_))) });
                }
            }
        }
    }
    r
}

fn local_report() -> BackendReport {
    BackendReport {
        name: "local",
        available: true,
        isolation: "process",
        version: None,
        detail: format!(
            "host processes in {} (no container: commands see the host)",
            dagger_sandbox::engines::local_sandbox_parent().display()
        ),
        images: Vec::new(),
    }
}

/// What the core's Dagger detection finds: environment and PATH only, so it is instant and never
/// connects (a reachable engine is only proven by a create).
fn dagger_report() -> BackendReport {
    let (available, detail) = match dagger_sandbox::engines::dagger_plausible() {
        Ok(()) => (true, "an engine is in sight (session or CLI plus a container runtime); not connected".to_string()),
        Err(why) => (false, why),
    };
    BackendReport { name: "dagger", available, isolation: "container", version: None, detail, images: vec![] }
}

async fn daemon_report(state_dir: &Path) -> anyhow::Result<DaemonReport> {
    let probe = client::probe(state_dir).await?;
    let health = probe.health.as_ref();
    Ok(DaemonReport {
        running: health.is_some(),
        addr: probe.info.as_ref().map(|i| i.addr.clone()),
        pid: probe.info.as_ref().map(|i| i.pid),
        started_at: probe.info.as_ref().map(|i| i.started_at.clone()),
        version: health.and_then(|h| h.get("version")).and_then(Value::as_str).map(str::to_string),
        sessions: health.and_then(|h| h.get("sessions")).and_then(Value::as_u64),
        detail: probe.problem,
    })
}

/// Prints the report; exits 0 (the local backend is always there), the report says what is missing.
pub async fn run(json: bool, state_dir: &Path) -> anyhow::Result<ExitCode> {
    // A broken templates.json is reported, not fatal: doctor is what people run when things break.
    let (templates, templates_error) = match dagger_sandbox_server::templates::load(state_dir) {
        Ok(t) => (t, None),
        Err(e) => (dagger_sandbox_server::templates::Templates::builtin(), Some(e.to_string())),
    };
    let mut images: Vec<String> = templates.iter().map(|t| t.image.clone()).collect();
    images.sort();
    let (docker, daemon) = tokio::join!(docker_report(images), daemon_report(state_dir));
    let report = Report {
        backends: vec![dagger_report(), docker, local_report()],
        state_dir: StateReport {
            path: state_dir.to_path_buf(),
            exists: state_dir.is_dir(),
            database: dagger_sandbox_server::state::db_path(state_dir).is_file(),
            token: dagger_sandbox_server::state::token_path(state_dir).is_file(),
        },
        daemon: daemon?,
        templates: templates
            .iter()
            .map(|t| TemplateReport {
                name: t.name.clone(),
                image: t.image.clone(),
                working_directory: t.working_directory.clone(),
                ports: t.ports.clone(),
            })
            .collect(),
        templates_error,
    };
    if json {
        output::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(["BACKEND", "AVAILABLE", "ISOLATION", "VERSION", "DETAIL"]);
    for b in &report.backends {
        t.row([
            b.name.to_string(),
            if b.available { "yes" } else { "no" }.to_string(),
            b.isolation.to_string(),
            b.version.clone().unwrap_or_else(|| "-".into()),
            b.detail.clone(),
        ]);
    }
    out!("{}", t.render())?;
    for b in report.backends.iter().filter(|b| !b.images.is_empty()) {
        outln!()?;
        let mut t = Table::new([format!("{} IMAGE", b.name.to_uppercase()), "PRESENT".to_string()]);
        for i in &b.images {
            t.row([i.name.clone(), if i.present { "yes" } else { "no (pulled on first use)" }.to_string()]);
        }
        out!("{}", t.render())?;
    }
    outln!()?;
    let mut t = Table::new(["TEMPLATE", "IMAGE", "WORKDIR", "PORTS"]);
    for tpl in &report.templates {
        let ports: Vec<String> = tpl.ports.iter().map(u16::to_string).collect();
        t.row([tpl.name.clone(), tpl.image.clone(), tpl.working_directory.clone(), ports.join(",")]);
    }
    out!("{}", t.render())?;
    if let Some(e) = &report.templates_error {
        outln!("warning: templates.json is not usable, built-ins shown: {e}")?;
    }
    outln!()?;
    let s = &report.state_dir;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    outln!("state dir  {}", s.path.display())?;
    outln!("           exists: {}, database: {}, token: {}", yes_no(s.exists), yes_no(s.database), yes_no(s.token))?;
    let d = &report.daemon;
    if d.running {
        outln!(
            "daemon     running at http://{} (pid {}, started {}, {})",
            d.addr.as_deref().unwrap_or("-"),
            d.pid.map_or("-".into(), |p| p.to_string()),
            output::relative(d.started_at.as_deref()),
            match d.sessions {
                Some(1) => "1 session".to_string(),
                Some(n) => format!("{n} sessions"),
                None => "? sessions".to_string(),
            }
        )?;
    } else {
        outln!(
            "daemon     not running ({}); any command but doctor and validate starts it",
            d.detail.as_deref().unwrap_or("unknown")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

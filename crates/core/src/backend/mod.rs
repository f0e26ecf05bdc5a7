//! The engines behind the sandbox API: the primitives each one implements, and the choice of one.
//!
//! Backends implement only primitives (start a command, move a tar in or out, read, stat, remove,
//! list, fork, close); every rule users see (paths, restricted paths, env and workdir state, timeouts,
//! output caps, error codes) lives once in [`crate::Sandbox`] and [`crate::exec`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{BackendChoice, ResolvedConfig};
use crate::error::{Error, Result};
use crate::exec::{ExecResult, RunningExec};
use crate::paths::SandboxPath;
use crate::stream::{ByteStream, FileReader};

#[cfg(feature = "dagger")]
pub(crate) mod dagger;
pub(crate) mod docker;
pub(crate) mod local;

/// The engine a sandbox actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The Dagger engine.
    Dagger,
    /// The Docker Engine API.
    Docker,
    /// Host processes in a private directory.
    Local,
}

impl BackendKind {
    /// `"dagger"`, `"docker"` or `"local"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Dagger => "dagger",
            BackendKind::Docker => "docker",
            BackendKind::Local => "local",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How strongly a sandbox is separated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A container: own filesystem, process tree and (by default) no network.
    Container,
    /// Only a private directory and a process group on the host: commands see the host.
    Process,
}

impl Isolation {
    /// `"container"` or `"process"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Container => "container",
            Isolation::Process => "process",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else (fifo, socket, device).
    Other,
}

/// One entry of [`crate::Sandbox::list_directory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The entry's name, without its directory.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size in bytes (of the link itself for a symlink).
    pub size: u64,
}

/// Most entries a directory listing returns; a larger directory is `TOO_LARGE`.
pub const LIST_MAX_ENTRIES: usize = 100_000;

/// Most bytes of output a helper command (a listing, a delete) may print; beyond it the call is
/// `TOO_LARGE` (a hostile or broken tool printing forever).
pub(crate) const HELPER_OUTPUT_MAX: usize = 32 * 1024 * 1024;

/// Refuses a file of `size` bytes when it is over `limit`, before any of it is read.
pub(crate) fn check_file_size(sandbox: &str, path: &SandboxPath, size: u64, limit: u64) -> Result<()> {
    if size <= limit {
        return Ok(());
    }
    Err(Error::too_large(
        sandbox,
        format!("the file {path}"),
        Some(size),
        limit,
        "read it as a stream (open_file / read_file_to) or copy it out with export_directory",
    ))
}

/// Refuses a listing of more than [`LIST_MAX_ENTRIES`] entries.
pub(crate) fn check_list_len(sandbox: &str, path: &SandboxPath, entries: usize) -> Result<()> {
    if entries <= LIST_MAX_ENTRIES {
        return Ok(());
    }
    Err(Error::too_large(
        sandbox,
        format!("the listing of {path} ({entries} entries or more)"),
        None,
        LIST_MAX_ENTRIES as u64,
        "the limit counts entries here; list a subdirectory, or run `ls` or `find` with exec",
    ))
}

/// The `TIMEOUT` of a helper command (`rm`, a listing) that ran past the sandbox's timeout. The
/// helper is left to the container (it ends with the sandbox); the call returns.
pub(crate) fn helper_timeout(sandbox: &str, argv: &[String], timeout: Duration) -> Error {
    Error::Timeout {
        sandbox: sandbox.to_string(),
        command: argv.join(" ").chars().take(120).collect(),
        timeout_ms: timeout.as_millis() as u64,
        partial: Box::new(ExecResult {
            exit_code: -1,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: timeout.as_millis() as u64,
            truncated: false,
            stdout_dropped: 0,
            stderr_dropped: 0,
        }),
    }
}

/// Parses, for the container backends' listings, `stat -c '%f %s %n'` lines (hex mode, size, name; the name may contain spaces).
pub(crate) fn parse_stat_lines(out: &str) -> Vec<DirEntry> {
    out.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ' ');
            let mode = u32::from_str_radix(it.next()?, 16).ok()?;
            let size = it.next()?.parse().ok()?;
            let name = it.next()?.to_string();
            let kind = match mode & 0o170000 {
                0o040000 => EntryKind::Dir,
                0o100000 => EntryKind::File,
                0o120000 => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            Some(DirEntry { name, kind, size })
        })
        .collect()
}

/// What a backend needs to run one command; env and cwd are already merged and resolved.
#[derive(Debug, Clone)]
pub(crate) struct ExecSpec {
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub cwd: SandboxPath,
    pub stdin: Option<Vec<u8>>,
    /// The call's timeout; `drive` enforces it, and engines may also bound the command in-engine.
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub timeout: std::time::Duration,
    /// The output cap `drive` applies; engines that return output in one piece apply it first.
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub output_cap: usize,
}

/// One sandbox's resources in one engine.
#[async_trait]
pub(crate) trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> BackendKind;
    /// How isolated it is.
    fn isolation(&self) -> Isolation;
    /// The engine resource behind the sandbox: a container id or a host directory.
    fn resource_id(&self) -> String;
    /// Starts `sh -c command`.
    async fn start_exec(&self, spec: ExecSpec) -> Result<Box<dyn RunningExec>>;
    /// Extracts a tar whose entries are relative to `/`, in one operation, reading it as it comes.
    async fn upload_tar(&self, tar: ByteStream) -> Result<()>;
    /// A tar of the directory at `path`, entries relative to it (`./a`, `./sub/b`), as a stream.
    async fn download_tar(&self, path: &SandboxPath) -> Result<ByteStream>;
    /// The regular file at `path` (symlinks followed inside the sandbox) as a stream; `TOO_LARGE`
    /// (see [`check_file_size`]) when it is over `limit` bytes, found out before any is read.
    async fn read_file(&self, path: &SandboxPath, limit: u64) -> Result<FileReader>;
    /// What is at `path` (not following a final symlink), or `None`.
    async fn stat(&self, path: &SandboxPath) -> Result<Option<EntryKind>>;
    /// Removes what is at `path`, recursively; the caller has checked it exists.
    async fn remove(&self, path: &SandboxPath) -> Result<()>;
    /// The entries of the directory at `path`, sorted by name.
    async fn list_dir(&self, path: &SandboxPath) -> Result<Vec<DirEntry>>;
    /// A new, independent sandbox with a copy of this one's filesystem.
    async fn fork(&self, new_id: &str) -> Result<Box<dyn Engine>>;
    /// Saves the filesystem as the snapshot `record` describes (env and workdir filled in by the
    /// caller, secrets already left out), and returns it.
    async fn snapshot(&self, record: crate::snapshot::Record) -> Result<crate::snapshot::Snapshot>;
    /// Frees every resource; safe to call more than once.
    async fn close(&self) -> Result<()>;
    /// Frees CPU and memory and keeps the filesystem (`Sandbox::stop`); safe to call more than
    /// once. By default nothing runs between calls (dagger), so there is nothing to free.
    async fn stop(&self) -> Result<()> {
        Ok(())
    }
    /// Undoes [`stop`](Self::stop): the same filesystem, running again.
    async fn resume(&self) -> Result<()> {
        Ok(())
    }
    /// Where the configured container ports are reachable on the host.
    fn ports(&self) -> Vec<PortMapping> {
        Vec::new()
    }
    /// What went wrong at create without failing it (a cache that could not be mounted).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether commands and files go through an in-sandbox agent (Docker's fast path) now.
    async fn agent_running(&self) -> bool {
        false
    }
}

/// A container port published on the host's loopback interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port inside the sandbox.
    pub container_port: u16,
    /// The port on 127.0.0.1 that reaches it.
    pub host_port: u16,
    /// `http://127.0.0.1:<host_port>`.
    pub url: String,
}

impl PortMapping {
    /// The mapping of `container_port` to `host_port` on 127.0.0.1.
    pub(crate) fn new(container_port: u16, host_port: u16) -> Self {
        PortMapping { container_port, host_port, url: format!("http://127.0.0.1:{host_port}") }
    }
}

/// How long `auto` waits for the Docker engine to answer before moving on.
pub(crate) const DOCKER_PROBE: Duration = Duration::from_millis(1500);

/// Opens a sandbox on the backend the config asks for. `Ok` also says whether `auto` fell back.
pub(crate) async fn open(cfg: &ResolvedConfig, id: &str) -> Result<(Box<dyn Engine>, Option<String>)> {
    match cfg.backend {
        BackendChoice::Dagger => Ok((open_dagger(cfg, id).await?, None)),
        BackendChoice::Docker => {
            let client = docker::connect(DOCKER_PROBE).await.map_err(|why| docker_unavailable(&why))?;
            Ok((Box::new(docker::DockerEngine::create(client, cfg, id).await?), None))
        }
        BackendChoice::Local => Ok((Box::new(local::LocalEngine::create(cfg, id)?), None)),
        BackendChoice::Auto => {
            let started = Instant::now();
            let (dagger_why, dagger_failed) = match auto_dagger(cfg, id).await {
                Ok(engine) => return Ok((engine, None)),
                Err(why) => why,
            };
            match docker::connect(DOCKER_PROBE).await {
                Ok(client) => {
                    let engine = Box::new(docker::DockerEngine::create(client, cfg, id).await?);
                    // Only a Dagger engine that was there and failed is worth a note; none found is
                    // the ordinary case on a machine with Docker alone.
                    let note = dagger_failed.then(|| {
                        let note = format!("dagger: {dagger_why}; sandbox {id} runs on the docker backend instead");
                        tracing::warn!(sandbox = id, "{note}");
                        note
                    });
                    Ok((engine, note))
                }
                Err(docker_why) if cfg.fallback => {
                    let note = format!(
                        "no container engine available ({dagger_why}; docker: {docker_why}); sandbox {id} runs on the \
                         LOCAL backend with process isolation only: commands can see and change the host"
                    );
                    tracing::warn!(sandbox = id, probe_ms = started.elapsed().as_millis() as u64, "{note}");
                    Ok((Box::new(local::LocalEngine::create(cfg, id)?), Some(note)))
                }
                Err(docker_why) => Err(Error::EngineUnavailable {
                    backend: "auto".into(),
                    tried: format!("dagger: {dagger_why}; docker: {docker_why}"),
                    hint: "Start Docker (or set DOCKER_HOST), or allow the local fallback with fallback: true.".into(),
                }),
            }
        }
    }
}

/// Opens sandbox `id` from snapshot `snap` on its backend. Docker needs nothing special: `cfg.image`
/// already names the snapshot's image.
pub(crate) async fn open_snapshot(
    cfg: &ResolvedConfig,
    id: &str,
    snap: &crate::snapshot::Snapshot,
) -> Result<Box<dyn Engine>> {
    match snap.backend {
        BackendKind::Docker => Ok(open(cfg, id).await?.0),
        BackendKind::Local => Ok(Box::new(local::LocalEngine::create_from(cfg, id, &snap.engine_ref).await?)),
        BackendKind::Dagger => open_dagger_snapshot(cfg, id, &snap.id).await,
    }
}

#[cfg(feature = "dagger")]
async fn open_dagger_snapshot(cfg: &ResolvedConfig, id: &str, snapshot: &str) -> Result<Box<dyn Engine>> {
    let record = crate::snapshot::records::read(snapshot)?;
    let container = record.dagger_id.ok_or_else(|| crate::snapshot::not_found(snapshot))?;
    let session = dagger::connect_session(cfg.dagger_connect_timeout, false).await?;
    Ok(Box::new(dagger::DaggerEngine::create_from(session, cfg, id, container).await?))
}

#[cfg(not(feature = "dagger"))]
async fn open_dagger_snapshot(cfg: &ResolvedConfig, id: &str, _snapshot: &str) -> Result<Box<dyn Engine>> {
    open_dagger(cfg, id).await
}

/// Takes back the engine resources of sandbox `id` (see `Sandbox::reattach`).
/// Also returns the env the resource recorded when it was made (a container's own env; none for a
/// local directory), so a caller that kept only the names gets the values back.
pub(crate) async fn reattach(
    cfg: &ResolvedConfig,
    id: &str,
    resource_id: &str,
) -> Result<(Box<dyn Engine>, BTreeMap<String, String>)> {
    reattach_with(cfg, id, resource_id, false).await
}

/// [`reattach`] that also takes back a stopped container (`Sandbox::reattach_stopped`).
pub(crate) async fn reattach_any(
    cfg: &ResolvedConfig,
    id: &str,
    resource_id: &str,
) -> Result<(Box<dyn Engine>, BTreeMap<String, String>)> {
    reattach_with(cfg, id, resource_id, true).await
}

async fn reattach_with(
    cfg: &ResolvedConfig,
    id: &str,
    resource_id: &str,
    stopped_ok: bool,
) -> Result<(Box<dyn Engine>, BTreeMap<String, String>)> {
    // `auto` records no backend: a local sandbox's resource is a host path, a container's an id.
    let local = match cfg.backend {
        BackendChoice::Local => true,
        BackendChoice::Auto if resource_id.starts_with("dagger:") => {
            return Err(Error::not_found(
                id,
                "sandbox",
                format!("{resource_id} (dagger state lives only in the process that made it)"),
            ))
        }
        BackendChoice::Auto => resource_id.starts_with('/'),
        BackendChoice::Docker => false,
        BackendChoice::Dagger => {
            return Err(Error::InvalidArgument(
                "a dagger sandbox cannot be reattached: its state lives in the client that made it".into(),
            ))
        }
    };
    if local {
        return Ok((Box::new(local::LocalEngine::reattach(cfg, id, resource_id)?), BTreeMap::new()));
    }
    let client = docker::connect(DOCKER_PROBE).await.map_err(|why| docker_unavailable(&why))?;
    let mut engine = docker::DockerEngine::reattach(client, cfg, id, resource_id, stopped_ok).await?;
    let env = std::mem::take(&mut engine.recorded_env);
    Ok((Box::new(engine), env))
}

/// `backend: "dagger"`: the shared session (found and connected within `daggerConnectTimeoutMs`),
/// then the sandbox.
#[cfg(feature = "dagger")]
async fn open_dagger(cfg: &ResolvedConfig, id: &str) -> Result<Box<dyn Engine>> {
    if !cfg.ports.is_empty() {
        return Err(Error::InvalidArgument(
            "ports are not supported on the dagger backend yet; use backend \"docker\" to publish ports".into(),
        ));
    }
    let session = dagger::connect_session(cfg.dagger_connect_timeout, false).await?;
    Ok(Box::new(dagger::DaggerEngine::create(session, cfg, id).await?))
}

#[cfg(not(feature = "dagger"))]
async fn open_dagger(_cfg: &ResolvedConfig, _id: &str) -> Result<Box<dyn Engine>> {
    Err(Error::EngineUnavailable {
        backend: "dagger".into(),
        tried: "this build of dagger-sandbox has no dagger backend (built without the `dagger` feature)".into(),
        hint: "Rebuild with the default features, or use backend \"docker\" or \"auto\".".into(),
    })
}

/// `auto`'s Dagger step: tried only where an engine is plausibly there (local checks, no waiting).
/// The error says why it was skipped, and whether an engine was there but failed.
#[cfg(feature = "dagger")]
async fn auto_dagger(cfg: &ResolvedConfig, id: &str) -> std::result::Result<Box<dyn Engine>, (String, bool)> {
    if !cfg.ports.is_empty() {
        return Err(("ports are not supported on the dagger backend yet".into(), false));
    }
    dagger::auto_plausible().map_err(|why| (why, false))?;
    let failed = |e: Error| match e {
        Error::EngineUnavailable { tried, .. } => (tried.trim_start_matches("dagger: ").to_string(), true),
        e => (e.to_string(), true),
    };
    let session = dagger::connect_session(cfg.dagger_connect_timeout, true).await.map_err(failed)?;
    let engine = dagger::DaggerEngine::create(session, cfg, id).await.map_err(failed)?;
    Ok(Box::new(engine))
}

#[cfg(not(feature = "dagger"))]
async fn auto_dagger(_cfg: &ResolvedConfig, _id: &str) -> std::result::Result<Box<dyn Engine>, (String, bool)> {
    Err(("this build has no dagger backend".into(), false))
}

pub(crate) fn docker_unavailable(why: &str) -> Error {
    Error::EngineUnavailable {
        backend: "docker".into(),
        tried: format!("docker: {why}"),
        hint: "Start the Docker daemon (e.g. `sudo dockerd &`, or run scripts/engine.sh as root), \
               or point DOCKER_HOST at one."
            .into(),
    }
}

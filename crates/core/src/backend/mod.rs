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
use crate::exec::RunningExec;
use crate::paths::SandboxPath;

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

/// What a backend needs to run one command; env and cwd are already merged and resolved.
#[derive(Debug, Clone)]
pub(crate) struct ExecSpec {
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub cwd: SandboxPath,
    pub stdin: Option<Vec<u8>>,
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
    /// Extracts a tar whose entries are relative to `/`, in one operation.
    async fn upload_tar(&self, tar: Vec<u8>) -> Result<()>;
    /// A tar of the directory at `path`, entries relative to it (`./a`, `./sub/b`).
    async fn download_tar(&self, path: &SandboxPath) -> Result<Vec<u8>>;
    /// The bytes of the regular file at `path` (symlinks followed inside the sandbox).
    async fn read_file(&self, path: &SandboxPath) -> Result<Vec<u8>>;
    /// What is at `path` (not following a final symlink), or `None`.
    async fn stat(&self, path: &SandboxPath) -> Result<Option<EntryKind>>;
    /// Removes what is at `path`, recursively; the caller has checked it exists.
    async fn remove(&self, path: &SandboxPath) -> Result<()>;
    /// The entries of the directory at `path`, sorted by name.
    async fn list_dir(&self, path: &SandboxPath) -> Result<Vec<DirEntry>>;
    /// A new, independent sandbox with a copy of this one's filesystem.
    async fn fork(&self, new_id: &str) -> Result<Box<dyn Engine>>;
    /// Frees every resource; safe to call more than once.
    async fn close(&self) -> Result<()>;
}

/// How long `auto` waits for the Docker engine to answer before moving on.
pub(crate) const DOCKER_PROBE: Duration = Duration::from_millis(1500);

/// Opens a sandbox on the backend the config asks for. `Ok` also says whether `auto` fell back.
pub(crate) async fn open(cfg: &ResolvedConfig, id: &str) -> Result<(Box<dyn Engine>, Option<String>)> {
    match cfg.backend {
        BackendChoice::Dagger => Err(dagger_unavailable()),
        BackendChoice::Docker => {
            let client = docker::connect(DOCKER_PROBE).await.map_err(|why| docker_unavailable(&why))?;
            Ok((Box::new(docker::DockerEngine::create(client, cfg, id).await?), None))
        }
        BackendChoice::Local => Ok((Box::new(local::LocalEngine::create(cfg, id)?), None)),
        BackendChoice::Auto => {
            let started = Instant::now();
            let dagger_why = "the dagger backend is not part of this build yet";
            match docker::connect(DOCKER_PROBE).await {
                Ok(client) => Ok((Box::new(docker::DockerEngine::create(client, cfg, id).await?), None)),
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

fn dagger_unavailable() -> Error {
    Error::EngineUnavailable {
        backend: "dagger".into(),
        tried: "the dagger backend is not part of this build yet".into(),
        hint: "Use backend \"docker\" (or \"auto\") until the Dagger backend lands.".into(),
    }
}

fn docker_unavailable(why: &str) -> Error {
    Error::EngineUnavailable {
        backend: "docker".into(),
        tried: format!("docker: {why}"),
        hint: "Start the Docker daemon (e.g. `sudo dockerd &`, or run scripts/engine.sh as root), \
               or point DOCKER_HOST at one."
            .into(),
    }
}

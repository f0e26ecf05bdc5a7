//! The docker backend: one long-lived, labelled container per sandbox, driven through the Docker
//! Engine API (bollard), never the docker CLI.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerConfig;
use bollard::query_parameters::CommitContainerOptionsBuilder;
use bollard::Docker;

use super::{BackendKind, DirEntry, Engine, EntryKind, ExecSpec, Isolation, PortMapping};
use crate::config::ResolvedConfig;
use crate::error::{Error, Result};
use crate::exec::RunningExec;
use crate::owner::{host_id, LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, LABEL_SANDBOX};
use crate::paths::SandboxPath;
use crate::stream::{ByteStream, FileReader};

pub(crate) mod agent;
mod container;
mod exec;
mod files;
pub(crate) mod inventory;
mod kill;
mod lifecycle;
pub(crate) mod snapshot;
pub(crate) mod volumes;

use container::{ensure_image, published_ports, start_with_agent};
pub(crate) use container::{kill_for_removal, remove_container, remove_image};

/// The repository that fork snapshots are committed to; the tag is the new sandbox's id.
const SNAPSHOT_REPO: &str = "dagger-sandbox-snapshot";

/// Version facts of a reachable Docker engine.
#[derive(Debug, Clone)]
pub struct DockerInfo {
    /// The engine's version (`20.10.24+dfsg1`).
    pub version: String,
    /// The API version it speaks (`1.41`).
    pub api_version: String,
}

/// Connects to the engine named by `DOCKER_HOST` (or the local socket) and checks it answers
/// within `probe`. The error says why not, for `ENGINE_UNAVAILABLE` messages.
pub(crate) async fn connect(probe: Duration) -> std::result::Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(|e| match e {
        DockerError::SocketNotFoundError(p) => format!("no socket at {p}"),
        e => e.to_string(),
    })?;
    match tokio::time::timeout(probe, docker.ping()).await {
        Err(_) => Err(format!("no answer within {} ms", probe.as_millis())),
        Ok(Err(e)) => Err(describe(&e)),
        Ok(Ok(_)) => Ok(docker),
    }
}

/// Whether a Docker engine answers, with its version; the error says why not.
pub async fn docker_available() -> std::result::Result<DockerInfo, String> {
    let docker = connect(super::DOCKER_PROBE).await?;
    let v = docker.version().await.map_err(|e| describe(&e))?;
    Ok(DockerInfo { version: v.version.unwrap_or_default(), api_version: v.api_version.unwrap_or_default() })
}

fn describe(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { status_code, message } => format!("{status_code}: {message}"),
        DockerError::HyperLegacyError { err } if err.is_connect() => "connection refused (is dockerd running?)".into(),
        e => e.to_string(),
    }
}

pub(crate) fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Waits for an exec whose output has ended to record its exit code. The code lands a moment after
/// the stream closes; `None` when the exec is still running after about two seconds (it closed its
/// output but kept going).
pub(crate) async fn wait_exit_code(docker: &Docker, exec_id: &str) -> std::result::Result<Option<i64>, DockerError> {
    for _ in 0..400 {
        let info = docker.inspect_exec(exec_id).await?;
        if info.running != Some(true) {
            return Ok(Some(info.exit_code.unwrap_or(-1)));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(None)
}

/// What a container is created with; kept so a fork gets the same limits and network.
#[derive(Debug, Clone)]
struct Spec {
    image: String,
    workdir: String,
    network: bool,
    memory_mb: u64,
    pids_limit: i64,
    labels: HashMap<String, String>,
    /// Container ports published on 127.0.0.1.
    ports: Vec<u16>,
    owner: String,
    /// The sandbox's env, also the container's: a daemon that restarts reads the values back from
    /// the engine instead of keeping secrets in its own files.
    env: BTreeMap<String, String>,
    /// The sandbox's exec timeout, which also bounds helper commands (`rm`, listings).
    timeout: Duration,
    /// The cache volumes mounted (made at create; a fork mounts the same).
    mounts: Vec<bollard::models::Mount>,
    /// Made with the engine's auto-remove: closing kills the container and the engine removes it.
    disposable: bool,
}

impl Spec {
    /// The container spec a config asks for, with the managed label.
    fn of(cfg: &ResolvedConfig) -> Self {
        let mut labels: HashMap<String, String> = cfg.labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "1".into());
        Spec {
            image: cfg.image.clone(),
            workdir: cfg.workdir.to_string(),
            network: cfg.network,
            memory_mb: cfg.memory_mb,
            pids_limit: cfg.pids_limit,
            labels,
            ports: cfg.ports.clone(),
            owner: cfg.owner.clone(),
            env: cfg.env.clone(),
            timeout: cfg.timeout,
            mounts: Vec::new(),
            disposable: cfg.disposable,
        }
    }
}

/// One sandbox's container (and, for a fork, the snapshot image it was made from).
pub(crate) struct DockerEngine {
    docker: Docker,
    id: String,
    container: String,
    spec: Spec,
    /// The snapshot image this sandbox owns (forks only); removed on close.
    owned_image: Option<String>,
    /// Where the published ports landed on the host (they may move when a stopped container
    /// starts again).
    ports: Mutex<Vec<PortMapping>>,
    /// On reattach: the env the container was created with (its env minus its image's).
    pub(crate) recorded_env: BTreeMap<String, String>,
    /// Its execs, so a kill knows when processes outside an exec's tree can only be that exec's.
    execs: Arc<kill::ExecBook>,
    /// What went wrong at create without failing it (a cache volume that could not be made).
    warnings: Vec<String>,
    /// The in-sandbox agent, the fast path for commands and files.
    agent: Arc<agent::AgentSlot>,
}

impl DockerEngine {
    /// Creates and starts the container for sandbox `id`, pulling the image first if it is missing.
    pub(crate) async fn create(docker: Docker, cfg: &ResolvedConfig, id: &str) -> Result<Self> {
        let t = std::time::Instant::now();
        ensure_image(&docker, &cfg.image, id).await?;
        let mut spec = Spec::of(cfg);
        let (mounts, warnings) = volumes::cache_mounts(&docker, &cfg.caches).await;
        tracing::debug!(sandbox = id, ms = t.elapsed().as_millis() as u64, "docker: image checked, volumes made");
        spec.mounts = mounts;
        for w in &warnings {
            tracing::warn!(sandbox = id, "{w}");
        }
        let t = std::time::Instant::now();
        let (container, ports, placement) = start_with_agent(&docker, &mut spec, id).await?;
        tracing::debug!(sandbox = id, ms = t.elapsed().as_millis() as u64, "docker: container created and started");
        let agent = agent::AgentSlot::new(&docker, &container, id, placement);
        agent.warm_up();
        Ok(DockerEngine {
            warnings,
            docker,
            id: id.to_string(),
            container,
            spec,
            owned_image: None,
            ports: Mutex::new(ports),
            recorded_env: BTreeMap::new(),
            execs: Default::default(),
            agent,
        })
    }

    /// Takes back the running container of sandbox `id` (a handle lost with a daemon restart).
    /// `NOT_FOUND` unless `container` exists, runs (or, with `stopped_ok`, is stopped) and carries
    /// the sandbox's label.
    pub(crate) async fn reattach(
        docker: Docker,
        cfg: &ResolvedConfig,
        id: &str,
        container: &str,
        stopped_ok: bool,
    ) -> Result<Self> {
        let gone = || Error::not_found(id, "container", container.to_string());
        let info = match docker.inspect_container(container, None).await {
            Ok(info) => info,
            Err(e) if status(&e) == Some(404) => return Err(gone()),
            Err(e) => return Err(Error::engine(id, "inspecting the container", describe(&e))),
        };
        let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        if labels.get(LABEL_SANDBOX).map(String::as_str) != Some(id) || !(running || stopped_ok) {
            return Err(gone());
        }
        // A fork runs from a snapshot image labelled with its own id: that image is its to remove.
        let image = info.image.clone().unwrap_or_default();
        let image_info = docker.inspect_image(&image).await.ok();
        let image_config = image_info.and_then(|i| i.config);
        let owned_image = image_config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .is_some_and(|l| l.get(LABEL_SANDBOX).map(String::as_str) == Some(id))
            .then_some(image);
        let image_env: Vec<String> = image_config.and_then(|c| c.env).unwrap_or_default();
        let recorded_env = info
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten()
            .filter(|kv| !image_env.contains(kv))
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let mut spec = Spec::of(cfg);
        // How the container was made decides how it is ended, whatever the config says now.
        spec.disposable = info.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false);
        let ports = published_ports(&info, &spec.ports);
        let container = info.id.unwrap_or_else(|| container.into());
        // The container may have been made with the agent mounted; starting it tells.
        let enabled = !agent::place::turned_off();
        let socket_dir = agent::place::existing_socket_dir(id).filter(|_| enabled);
        let placement = agent::Placement { enabled, socket_dir };
        let agent = agent::AgentSlot::new(&docker, &container, id, placement);
        Ok(DockerEngine {
            warnings: Vec::new(),
            docker,
            id: id.to_string(),
            container,
            spec,
            owned_image,
            ports: Mutex::new(ports),
            recorded_env,
            execs: Default::default(),
            agent,
        })
    }

    /// Waits until the agent's start has ended, whichever way. Call it before anything that
    /// pauses the container (a commit with `pause`): an exec being started meanwhile (the agent
    /// starting in the background after create) freezes half-made and deadlocks the engine on
    /// this container (seen live: `docker inspect` of it hung until the cgroup was thawed).
    pub(crate) async fn settle_agent(&self) {
        let _ = self.agent.link().await;
    }

    fn err(&self, op: &str, e: DockerError) -> Error {
        Error::engine(&self.id, op, describe(&e))
    }
}

/// Snapshot images that could not be removed yet (a fork of a fork still builds on them); every
/// close tries them again, so the last close of a family removes them all.
static PENDING_IMAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Serializes image cleanup: two closes racing could each see the other's image still in use and
/// both leave it pending with nobody left to retry.
static IMAGE_CLEANUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[async_trait]
impl Engine for DockerEngine {
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    fn resource_id(&self) -> String {
        self.container.clone()
    }

    fn ports(&self) -> Vec<PortMapping> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn stop(&self) -> Result<()> {
        // The agent ends with the container's processes: its connection goes quietly first.
        self.settle_agent().await;
        self.agent.close();
        lifecycle::stop(self).await
    }

    async fn resume(&self) -> Result<()> {
        lifecycle::resume(self).await?;
        self.agent.reopen();
        Ok(())
    }

    async fn start_exec(&self, spec: ExecSpec) -> Result<Box<dyn RunningExec>> {
        if let Some(link) = self.agent.link().await {
            let run = agent::AgentExec::start(&link, &self.docker, &self.container, &self.id, spec).await?;
            return Ok(Box::new(run));
        }
        if !matches!(self.stat(&spec.cwd).await?, Some(EntryKind::Dir | EntryKind::Symlink)) {
            return Err(Error::not_found(&self.id, "working directory", spec.cwd.to_string()));
        }
        let run = exec::DockerExec::start(&self.docker, &self.container, &self.id, &self.execs, spec).await?;
        Ok(Box::new(run))
    }

    async fn upload_tar(&self, tar: ByteStream) -> Result<()> {
        match self.agent.files_link().await {
            Some(link) => agent::files::upload(&link, &self.id, self.spec.timeout, tar).await,
            None => files::upload(self, tar).await,
        }
    }

    async fn download_tar(&self, path: &SandboxPath) -> Result<ByteStream> {
        files::download(self, path).await
    }

    async fn read_file(&self, path: &SandboxPath, limit: u64) -> Result<FileReader> {
        match self.agent.files_link().await {
            Some(link) => agent::files::read_file(&link, &self.id, path, limit).await,
            None => files::read_file(self, path, limit).await,
        }
    }

    async fn stat(&self, path: &SandboxPath) -> Result<Option<EntryKind>> {
        match self.agent.files_link().await {
            Some(link) => agent::files::stat(&link, &self.id, path).await,
            None => files::stat(self, path).await,
        }
    }

    async fn remove(&self, path: &SandboxPath) -> Result<()> {
        match self.agent.files_link().await {
            Some(link) => agent::files::remove(&link, &self.id, self.spec.timeout, path).await,
            None => files::remove(self, path).await,
        }
    }

    async fn list_dir(&self, path: &SandboxPath) -> Result<Vec<DirEntry>> {
        match self.agent.files_link().await {
            Some(link) => agent::files::list_dir(&link, &self.id, path).await,
            None => files::list_dir(self, path).await,
        }
    }

    async fn agent_running(&self) -> bool {
        self.agent.running().await
    }

    async fn fork(&self, new_id: &str) -> Result<Box<dyn Engine>> {
        let mut labels: HashMap<String, String> = self.spec.labels.clone();
        labels.insert(LABEL_SANDBOX.into(), new_id.into());
        labels.insert(LABEL_OWNER.into(), self.spec.owner.clone());
        labels.insert(LABEL_HOST.into(), host_id().into());
        self.settle_agent().await;
        // pause=true: a commit of a container whose processes keep writing must not be torn.
        let opts = CommitContainerOptionsBuilder::default()
            .container(&self.container)
            .repo(SNAPSHOT_REPO)
            .tag(new_id)
            .pause(true)
            .build();
        let snap = self
            .docker
            .commit_container(opts, ContainerConfig { labels: Some(labels), ..Default::default() })
            .await
            .map_err(|e| self.err("committing the fork snapshot", e))?;
        let mut spec = Spec { image: snap.id.clone(), ..self.spec.clone() };
        let (container, ports, placement) = match start_with_agent(&self.docker, &mut spec, new_id).await {
            Ok(c) => c,
            Err(e) => {
                let _ = remove_image(&self.docker, &snap.id).await;
                return Err(e);
            }
        };
        let agent = agent::AgentSlot::new(&self.docker, &container, new_id, placement);
        agent.warm_up();
        Ok(Box::new(DockerEngine {
            warnings: Vec::new(),
            docker: self.docker.clone(),
            id: new_id.to_string(),
            container,
            spec: Spec { image: self.spec.image.clone(), ..spec },
            owned_image: Some(snap.id),
            ports: Mutex::new(ports),
            recorded_env: BTreeMap::new(),
            execs: Default::default(),
            agent,
        }))
    }

    async fn snapshot(&self, record: crate::snapshot::Record) -> Result<crate::snapshot::Snapshot> {
        self.take_snapshot(record).await
    }

    async fn close(&self) -> Result<()> {
        self.agent.close();
        let t = std::time::Instant::now();
        if self.spec.disposable {
            // The slow part of a removal is deleting the files (thousands in a node_modules); the
            // engine does it after the kill, off the caller's path.
            kill_for_removal(&self.docker, &self.container).await.map_err(|e| self.err("killing the container", e))?;
        } else {
            remove_container(&self.docker, &self.container).await.map_err(|e| self.err("removing the container", e))?;
        }
        tracing::debug!(sandbox = %self.id, ms = t.elapsed().as_millis() as u64, "docker: container ended");
        agent::place::remove_socket_dir(&self.id);
        if self.spec.image.starts_with(snapshot::SNAPSHOTS_REPO) {
            // Made from a snapshot that may have been deleted while this sandbox used its image
            // (after a disposable kill the engine may still hold it: the next delete or sweep prunes).
            snapshot::prune_deleted(&self.docker).await;
        }
        let _cleanup = IMAGE_CLEANUP.lock().await;
        let mut todo: Vec<String> = std::mem::take(&mut *PENDING_IMAGES.lock().unwrap_or_else(|p| p.into_inner()));
        todo.extend(self.owned_image.clone());
        let mut still = Vec::new();
        // Newest first: a snapshot's own forks must go before it can.
        for image in todo.into_iter().rev() {
            match remove_image(&self.docker, &image).await {
                Ok(true) => {}
                Ok(false) => still.push(image),
                Err(e) => {
                    tracing::warn!(sandbox = %self.id, image, "removing a snapshot image failed: {}", describe(&e));
                    still.push(image);
                }
            }
        }
        still.reverse();
        PENDING_IMAGES.lock().unwrap_or_else(|p| p.into_inner()).extend(still);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::container::split_image;

    #[test]
    fn image_names_split_into_repo_and_tag() {
        assert_eq!(split_image("node:20-alpine3.22"), ("node", "20-alpine3.22"));
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
        assert_eq!(split_image("localhost:5000/x/y"), ("localhost:5000/x/y", "latest"));
        assert_eq!(split_image("localhost:5000/x/y:1"), ("localhost:5000/x/y", "1"));
        assert_eq!(split_image("a@sha256:00"), ("a@sha256:00", ""));
    }
}

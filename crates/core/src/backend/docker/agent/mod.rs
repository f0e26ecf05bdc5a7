//! The Docker backend's fast path: a small agent of ours inside each sandbox (crates/agent), spoken
//! to over one long-lived exec, runs commands and file operations in about a millisecond instead of
//! an Engine API exec or archive request each. It is only a fast path: when it cannot be placed,
//! cannot start, or misbehaves, the backend says so once and serves every call through the
//! Engine API as before. `DAGGER_SANDBOX_AGENT=off` turns it off.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use std::path::PathBuf;
use tokio::sync::OnceCell;

use link::Link;

mod exec;
pub(crate) mod files;
pub(crate) mod link;
pub(crate) mod place;

pub(crate) use exec::AgentExec;

/// How long a healthy agent may stay silent on a quick request (a stat, the next chunk of a file,
/// a command's start) before it is taken as hung and the connection ends.
pub(crate) const QUICK: Duration = Duration::from_secs(30);

/// One sandbox's agent: started once (in the background right after create, or at first use) and
/// shared by every call; `None` once it failed.
pub(crate) struct AgentSlot {
    docker: Docker,
    container: String,
    sandbox: String,
    enabled: bool,
    /// The host directory mounted at `link::SOCKET_DIR` for the socket transport, if any.
    socket_dir: Option<PathBuf>,
    /// This generation's connection; `reopen` starts a new generation after the container's
    /// processes (the agent among them) were stopped and started again.
    cell: std::sync::Mutex<Arc<OnceCell<Option<Arc<Link>>>>>,
    /// Set by `close`: an agent failing to start or stopping then is expected, not news.
    closed: std::sync::atomic::AtomicBool,
}

/// What a container was given for its agent.
#[derive(Default)]
pub(crate) struct Placement {
    /// Whether the binary is mounted.
    pub enabled: bool,
    /// The socket directory mounted beside it (`place::socket_dir_of`).
    pub socket_dir: Option<PathBuf>,
}

impl AgentSlot {
    /// The agent of `container`; without a mounted binary, calls always take the Engine API path.
    pub(crate) fn new(docker: &Docker, container: &str, sandbox: &str, placement: Placement) -> Arc<Self> {
        Arc::new(AgentSlot {
            docker: docker.clone(),
            container: container.to_string(),
            sandbox: sandbox.to_string(),
            enabled: placement.enabled,
            socket_dir: placement.socket_dir,
            cell: Default::default(),
            closed: Default::default(),
        })
    }

    /// Starts the agent in the background, so the first call does not wait for it.
    pub(crate) fn warm_up(self: &Arc<Self>) {
        if self.enabled {
            let slot = self.clone();
            tokio::spawn(async move { slot.link().await });
        }
    }

    /// The working connection, starting it on first use; `None` for the Engine API path.
    pub(crate) async fn link(&self) -> Option<Arc<Link>> {
        if !self.enabled {
            return None;
        }
        let cell = self.generation();
        let link = cell
            .get_or_init(|| async {
                let socket = self.socket_dir.as_deref();
                match Link::start(&self.docker, &self.container, &self.sandbox, place::AGENT_PATH, socket).await {
                    Ok(link) => {
                        tracing::debug!(sandbox = %self.sandbox, pid = link.pid, uid = link.uid, "agent ready");
                        Some(link)
                    }
                    Err(e) if self.closed.load(std::sync::atomic::Ordering::SeqCst) => {
                        tracing::debug!(sandbox = %self.sandbox, "the agent did not start before close: {e}");
                        None
                    }
                    Err(e) => {
                        place::note_unused(&self.sandbox, &e.to_string());
                        None
                    }
                }
            })
            .await;
        link.as_ref().filter(|l| l.alive()).cloned()
    }

    /// The connection for file operations: only an agent running as root sees and writes files
    /// as the Engine API's archive calls do (as root, whatever the image's user).
    pub(crate) async fn files_link(&self) -> Option<Arc<Link>> {
        self.link().await.filter(|l| l.uid == 0)
    }

    /// Ends the agent's connection quietly: the sandbox is closing or stopping (its container's
    /// processes, the agent among them, end).
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(Some(link)) = self.generation().get() {
            link.close();
        }
    }

    /// After a stopped container was started again: a new agent for later calls (started in the
    /// background), so a resumed sandbox keeps the fast path instead of falling back.
    pub(crate) fn reopen(self: &Arc<Self>) {
        *self.cell.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(OnceCell::new());
        self.closed.store(false, std::sync::atomic::Ordering::SeqCst);
        self.warm_up();
    }

    /// The current generation's connection cell.
    fn generation(&self) -> Arc<OnceCell<Option<Arc<Link>>>> {
        self.cell.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether calls go through a working agent now (starting it if it has not been).
    pub(crate) async fn running(&self) -> bool {
        self.link().await.is_some()
    }
}

/// An agent's message, cut short: it comes from inside the sandbox.
pub(crate) fn said(message: &str) -> String {
    const MAX: usize = 1024;
    if message.len() <= MAX {
        return message.to_string();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

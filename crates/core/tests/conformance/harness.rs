//! Which backends the suite runs against here, and the helpers its cases share.

use std::time::Duration;

use dagger_sandbox::{BackendChoice, BackendKind, Error, ErrorCode, Sandbox, SandboxConfig};

/// The image the docker cases use: built locally by scripts/engine.sh, no registry needed.
pub const BUSYBOX_IMAGE: &str = "dagger-sandbox-test/busybox:latest";
/// The Node image for cases that need node: built locally by scripts/engine.sh.
pub const NODE_IMAGE: &str = "dagger-sandbox-test/node:latest";

/// One backend the suite is instantiated for.
#[derive(Debug, Clone)]
pub struct Harness {
    pub kind: BackendKind,
    pub image: String,
    /// An image with Node for the Node cases, where this backend can reach one.
    pub node_image: Option<String>,
}

/// Whether a backend can run here, or why not.
pub enum Availability {
    Ready(Harness),
    Skipped(String),
}

impl Harness {
    pub fn config(&self) -> SandboxConfig {
        let backend = match self.kind {
            BackendKind::Docker => BackendChoice::Docker,
            BackendKind::Local => BackendChoice::Local,
            BackendKind::Dagger => BackendChoice::Dagger,
        };
        let cfg = SandboxConfig::new().backend(backend).fallback(false);
        if self.image.is_empty() {
            cfg
        } else {
            cfg.image(self.image.clone())
        }
    }

    pub fn is_container(&self) -> bool {
        self.kind != BackendKind::Local
    }

    /// Whether output arrives as it is written. On Dagger an exec is one query whose output comes
    /// with its result (docs/DAGGER.md, differences): chunks arrive in order, but at the end.
    pub fn streams_output(&self) -> bool {
        self.kind != BackendKind::Dagger
    }

    pub async fn create(&self) -> Sandbox {
        self.create_with(self.config()).await
    }

    pub async fn create_with(&self, cfg: SandboxConfig) -> Sandbox {
        let sb = Sandbox::create(cfg).await.unwrap_or_else(|e| panic!("create on {}: {e}", self.kind));
        assert_eq!(sb.backend(), self.kind);
        sb
    }
}

/// Probes each backend. With `DAGGER_SANDBOX_REQUIRE_DOCKER=1` a missing Docker engine or test
/// image is a hard failure, so CI can never pass by skipping the Docker suite.
pub async fn probe(kind: BackendKind) -> Availability {
    match kind {
        BackendKind::Local => Availability::Ready(Harness { kind, image: String::new(), node_image: None }),
        BackendKind::Dagger => probe_dagger().await,
        BackendKind::Docker => {
            let require = std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1");
            let why = match dagger_sandbox::engines::docker_available().await {
                Err(why) => Some(format!("no Docker engine: {why}")),
                Ok(_) => match agent_runs(BUSYBOX_IMAGE).await {
                    None => Some(format!("test image {BUSYBOX_IMAGE} is missing; run scripts/engine.sh")),
                    Some(agent) => {
                        // The suite runs twice on Docker (scripts/test.sh): through the agent, and with
                        // DAGGER_SANDBOX_AGENT=off through the Engine API alone. Say which this is.
                        println!(
                            "conformance on docker: {}",
                            if agent { "through the in-sandbox agent" } else { "through the Engine API (no agent)" }
                        );
                        let required = std::env::var("DAGGER_SANDBOX_REQUIRE_AGENT").as_deref() == Ok("1");
                        let off = std::env::var("DAGGER_SANDBOX_AGENT").is_ok_and(|v| v == "off");
                        if required && !off && !agent {
                            panic!(
                                "DAGGER_SANDBOX_REQUIRE_AGENT=1 but the agent does not run (scripts/agent-build.sh)"
                            );
                        }
                        None
                    }
                },
            };
            match why {
                None => Availability::Ready(Harness {
                    kind,
                    image: BUSYBOX_IMAGE.into(),
                    node_image: Some(NODE_IMAGE.into()),
                }),
                Some(why) if require => panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but {why}"),
                Some(why) => Availability::Skipped(why),
            }
        }
    }
}

/// The image the dagger cases use: pulled by the engine from Docker Hub (Dagger cannot see images
/// in the local Docker store); `DAGGER_SANDBOX_TEST_DAGGER_IMAGE` overrides it.
pub const DAGGER_IMAGE: &str = "alpine:3.22";

/// Probes Dagger through the backend's own detection, bounded. Without an engine in sight (no
/// session env, no CLI) it skips at once; `DAGGER_SANDBOX_TEST_DAGGER=1` also lets the SDK
/// download a CLI and provision an engine (minutes on a first run) and makes failure fatal.
async fn probe_dagger() -> Availability {
    let kind = BackendKind::Dagger;
    let required = std::env::var("DAGGER_SANDBOX_TEST_DAGGER").as_deref() == Ok("1");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dagger").is_file()))
        .unwrap_or(false);
    let in_sight = std::env::var_os("DAGGER_SESSION_PORT").is_some()
        || std::env::var_os("_EXPERIMENTAL_DAGGER_CLI_BIN").is_some()
        || on_path;
    if !required && !in_sight {
        return Availability::Skipped(
            "no Dagger engine in sight (DAGGER_SESSION_PORT and _EXPERIMENTAL_DAGGER_CLI_BIN unset, no dagger on \
             PATH); DAGGER_SANDBOX_TEST_DAGGER=1 lets the SDK provision one"
                .into(),
        );
    }
    let image = std::env::var("DAGGER_SANDBOX_TEST_DAGGER_IMAGE").unwrap_or_else(|_| DAGGER_IMAGE.into());
    let bound = Duration::from_secs(if required { 900 } else { 120 });
    let cfg = SandboxConfig::new()
        .backend(BackendChoice::Dagger)
        .fallback(false)
        .image(image.clone())
        .dagger_connect_timeout(bound);
    let why = match tokio::time::timeout(bound + Duration::from_secs(60), Sandbox::create(cfg)).await {
        Ok(Ok(sb)) => {
            let _ = sb.close().await;
            // The engine cannot see the local Docker store: a Node image comes from a registry.
            let node_image = std::env::var("DAGGER_SANDBOX_TEST_DAGGER_NODE_IMAGE").ok().filter(|s| !s.is_empty());
            return Availability::Ready(Harness { kind, image, node_image });
        }
        Ok(Err(e)) => format!("{}: {e}", e.code()),
        Err(_) => format!("creating a dagger sandbox took more than {} s", bound.as_secs() + 60),
    };
    if required {
        panic!("DAGGER_SANDBOX_TEST_DAGGER=1 but {why}");
    }
    Availability::Skipped(why)
}

/// Whether a sandbox can be made from `image` on Docker (`None` if not) and whether it runs the
/// in-sandbox agent. Creating is the honest check: it is what the cases will do, and with no
/// registry reachable a missing image fails fast.
pub async fn agent_runs(image: &str) -> Option<bool> {
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).image(image).fallback(false);
    match Sandbox::create(cfg).await {
        Ok(sb) => {
            let agent = sb.agent_running().await;
            let _ = sb.close().await;
            Some(agent)
        }
        Err(_) => None,
    }
}

/// A runtime for one case: multi-threaded like real users', small like the CI machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Asserts `r` failed with `code`, and returns the error for further checks.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(r: Result<T, Error>, code: ErrorCode) -> Error {
    match r {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "expected {code}, got {}: {e}", e.code());
            e
        }
    }
}

/// How long any one case may take before it counts as hung.
pub const CASE_LIMIT: Duration = Duration::from_secs(180);

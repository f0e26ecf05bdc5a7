//! Sandboxes the daemon owns, driven from any process by id: [`connect`] asks the daemon where
//! the sandbox is (`POST /api/sandbox/{id}/attach`, which also resumes one stopped for being idle)
//! and returns a core handle on it whose stop, resume and delete go back to the daemon;
//! [`create_persistent`] creates a sandbox through the daemon (starting one when none runs) so it
//! outlives the calling process. Closing such a handle leaves the sandbox to the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagger_sandbox::{BackendChoice, Error, Owner, Sandbox, SandboxConfig};
use serde_json::{json, Value};

use crate::client::{Client, CodedError};

/// The daemon's side of a connected handle: its REST API for one session.
struct DaemonOwner {
    client: Client,
    id: String,
}

impl DaemonOwner {
    async fn post(&self, action: &str) -> dagger_sandbox::Result<Value> {
        self.client.session_post(&self.id, action).await.map_err(|e| to_core(&self.id, e))
    }
}

#[async_trait::async_trait]
impl Owner for DaemonOwner {
    async fn stop(&self) -> dagger_sandbox::Result<()> {
        self.post("stop").await.map(drop)
    }

    async fn resume(&self) -> dagger_sandbox::Result<()> {
        self.post("resume").await.map(drop)
    }

    async fn delete(&self) -> dagger_sandbox::Result<()> {
        match self.client.stop(&self.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == "NOT_FOUND" => Ok(()),
            Err(e) => Err(to_core(&self.id, e)),
        }
    }

    async fn touch(&self) -> dagger_sandbox::Result<()> {
        let v = self.post("attach").await?;
        // A sandbox a user stopped stays stopped until someone resumes it.
        if v["status"] == "stopped" {
            return Err(Error::Stopped { sandbox: self.id.clone() });
        }
        Ok(())
    }
}

/// A daemon error as the core error with the same meaning.
fn to_core(id: &str, e: CodedError) -> Error {
    match e.code() {
        "NOT_FOUND" => Error::NotFound { sandbox: id.to_string(), what: "session", path: id.to_string() },
        "STOPPED" => Error::Stopped { sandbox: id.to_string() },
        "SESSION_ENDED" => Error::Closed { sandbox: id.to_string() },
        "INVALID_ARGUMENT" | "UNAUTHORIZED" => Error::InvalidArgument(e.message),
        "ENGINE_UNAVAILABLE" => Error::EngineUnavailable {
            backend: "daemon".into(),
            tried: e.message,
            hint: "Check `dagger-sandbox doctor`; the daemon log is daemon.log in the state dir.".into(),
        },
        _ => Error::Engine { sandbox: id.to_string(), op: "asking the daemon".into(), message: e.to_string() },
    }
}

/// The daemon's state dir: `state_dir`, or the default (`$DAGGER_SANDBOX_STATE_DIR`, ...).
fn state_dir_or_default(state_dir: Option<&Path>) -> PathBuf {
    state_dir.map(Path::to_path_buf).unwrap_or_else(crate::state::default_state_dir)
}

/// A handle on sandbox `id`, which the daemon of `state_dir` (default: the default state dir)
/// owns, starting the daemon when none runs. `handle` gives what applies to this handle only:
/// `timeoutMs`, `restrictedPaths`, `outputCapBytes` and extra `env`; everything else (engine,
/// image, workdir, limits) is the sandbox's own. A sandbox a user stopped comes back as a stopped
/// handle (calls are `STOPPED` until `resume`); one the daemon stopped for being idle is resumed.
/// `close` frees only the handle;
/// [`Sandbox::delete`] deletes the sandbox.
pub async fn connect(state_dir: Option<&Path>, id: &str, handle: SandboxConfig) -> dagger_sandbox::Result<Sandbox> {
    let client = Client::connect(&state_dir_or_default(state_dir)).await.map_err(|e| to_core(id, e))?;
    attach(client, id, handle).await
}

async fn attach(client: Client, id: &str, handle: SandboxConfig) -> dagger_sandbox::Result<Sandbox> {
    let v = client.session_post(id, "attach").await.map_err(|e| to_core(id, e))?;
    let mut cfg: SandboxConfig = serde_json::from_value(v["config"].clone())
        .map_err(|e| Error::InvalidArgument(format!("the daemon's config of {id} does not read: {e}")))?;
    let resource = v["containerId"]
        .as_str()
        .ok_or_else(|| Error::InvalidArgument(format!("the daemon reports no engine resource for {id}")))?
        .to_string();
    if handle.timeout_ms.is_some() {
        cfg.timeout_ms = handle.timeout_ms;
    }
    if handle.output_cap_bytes.is_some() {
        cfg.output_cap_bytes = handle.output_cap_bytes;
    }
    cfg.restricted_paths.extend(handle.restricted_paths);
    cfg.env.extend(handle.env);
    let stopped = v["status"] == "stopped";
    let owner = Arc::new(DaemonOwner { client, id: id.to_string() });
    Sandbox::connect_owned(cfg, id, &resource, owner, stopped).await
}

/// Creates a sandbox through the daemon of `state_dir` (default: the default state dir),
/// starting the daemon when none runs, and returns a connected handle: the sandbox outlives this
/// process and is reached again with [`connect`]. The daemon's TTL applies (`ttl_seconds`, default
/// the daemon's, one hour). The engine settings the daemon takes are `backend` (`auto`, `docker`
/// or `local`), `image`, `template`, `workdir`, `env`, `fallback`, `caCertificates` and `caches`;
/// `timeoutMs`, `restrictedPaths` and `outputCapBytes` apply to the handle. Anything else is
/// `INVALID_ARGUMENT`, before anything is created.
pub async fn create_persistent(
    state_dir: Option<&Path>,
    config: SandboxConfig,
    ttl_seconds: Option<u64>,
) -> dagger_sandbox::Result<Sandbox> {
    let body = create_body(&config, ttl_seconds)?;
    let client = Client::connect(&state_dir_or_default(state_dir)).await.map_err(|e| to_core("", e))?;
    let created = client.create(&body).await.map_err(|e| to_core("", e))?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let mut handle = SandboxConfig::default();
    handle.timeout_ms = config.timeout_ms;
    handle.output_cap_bytes = config.output_cap_bytes;
    handle.restricted_paths = config.restricted_paths;
    match attach(client.clone(), &id, handle).await {
        Ok(sb) => Ok(sb),
        Err(e) => {
            // Nobody could use it: leave nothing behind.
            let _ = client.stop(&id).await;
            Err(e)
        }
    }
}

/// The `POST /api/sandbox` body of a persistent create, refusing what the daemon does not take.
fn create_body(c: &SandboxConfig, ttl_seconds: Option<u64>) -> dagger_sandbox::Result<Value> {
    let unsupported = [
        ("network", c.network),
        ("memoryMb", c.memory_mb.is_some()),
        ("pidsLimit", c.pids_limit.is_some()),
        ("ports", !c.ports.is_empty()),
        ("labels", !c.labels.is_empty()),
        ("envPassthrough", !c.env_passthrough.is_empty()),
        ("owner", c.owner.is_some()),
        ("cacheExecs", c.cache_execs),
        ("secretPatterns", c.secret_patterns.is_some()),
        ("daggerConnectTimeoutMs", c.dagger_connect_timeout_ms.is_some()),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(Error::InvalidArgument(format!(
            "persistent sandboxes are created by the daemon, which does not take `{name}`; leave it out \
             (the daemon takes backend, image, template, workdir, env, fallback, caCertificates, caches)"
        )));
    }
    if c.backend == BackendChoice::Dagger {
        return Err(Error::InvalidArgument(
            "persistent sandboxes run on docker or local: a dagger sandbox's state lives in the process that made it"
                .into(),
        ));
    }
    let mut body = json!({
        "backend": c.backend,
        "image": c.image,
        "template": c.template,
        "workingDirectory": c.workdir,
        "env": c.env,
        "fallback": c.fallback,
        "caCertificates": c.ca_certificates,
        "caches": c.caches,
    });
    if let Some(t) = ttl_seconds {
        body["ttlSeconds"] = json!(t);
    }
    // Absent rather than null: the daemon reads an absent field as its default.
    if let Some(obj) = body.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persistent_create_carries_what_the_daemon_takes_and_refuses_the_rest() {
        let c = SandboxConfig::new().backend(BackendChoice::Docker).image("busybox").env("A", "1").workdir("/w");
        let body = create_body(&c, Some(60)).unwrap();
        assert_eq!(
            body,
            json!({"backend": "docker", "image": "busybox", "env": {"A": "1"}, "workingDirectory": "/w", "ttlSeconds": 60})
        );
        let e = create_body(&SandboxConfig::new().port(80), None).unwrap_err();
        assert!(e.to_string().contains("`ports`"), "{e}");
        let e = create_body(&SandboxConfig::new().backend(BackendChoice::Dagger), None).unwrap_err();
        assert!(e.to_string().contains("docker or local"), "{e}");
    }

    #[test]
    fn daemon_errors_keep_their_meaning_as_core_errors() {
        let code = |c: &str| to_core("sbx-1", CodedError::new(c, "m")).code().as_str();
        assert_eq!(code("NOT_FOUND"), "NOT_FOUND");
        assert_eq!(code("STOPPED"), "STOPPED");
        assert_eq!(code("SESSION_ENDED"), "CLOSED");
        assert_eq!(code("ENGINE_UNAVAILABLE"), "ENGINE_UNAVAILABLE");
        assert_eq!(code("QUOTA_EXCEEDED"), "ENGINE_ERROR");
    }
}

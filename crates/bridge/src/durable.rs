//! Durable sandboxes on the bridge: `sandbox/stop` and `sandbox/resume` (files kept, nothing
//! running meanwhile; calls fail with `STOPPED`), `sandbox/connect` to a sandbox the daemon owns,
//! by id, `persistent: true` on `sandbox/create` (made through the daemon, so it outlives this
//! bridge), and `delete: true` on `sandbox/close` (a connected sandbox is otherwise left to the
//! daemon).

use std::path::PathBuf;
use std::sync::Arc;

use dagger_sandbox::{Sandbox, SandboxConfig};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::methods::sandbox_json;
use crate::protocol::{params, RpcError};
use crate::server::Server;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SandboxRef {
    sandbox_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectParams {
    sandbox_id: String,
    /// The daemon's state dir (default: `$DAGGER_SANDBOX_STATE_DIR`, then the default).
    state_dir: Option<PathBuf>,
    /// What applies to this handle only (timeoutMs, restrictedPaths, outputCapBytes, env).
    #[serde(default)]
    config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CloseParams {
    sandbox_id: String,
    /// Also delete a connected (daemon-owned) sandbox; a plain sandbox is always freed.
    #[serde(default)]
    delete: bool,
}

/// Runs `sandbox/stop`, `sandbox/resume` or `sandbox/close`; `None` for any other method.
pub async fn call(server: &Arc<Server>, method: &str, p: Value) -> Option<Result<Value, RpcError>> {
    Some(match method {
        "sandbox/stop" | "sandbox/resume" => stop_or_resume(server, method == "sandbox/stop", p).await,
        "sandbox/close" => close(server, p).await,
        _ => return None,
    })
}

async fn stop_or_resume(server: &Arc<Server>, stop: bool, p: Value) -> Result<Value, RpcError> {
    let r: SandboxRef = params(p)?;
    let sb = server.sandbox(&r.sandbox_id)?;
    if stop {
        sb.stop().await?;
    } else {
        sb.resume().await?;
    }
    Ok(json!({"stopped": sb.is_stopped(), "ports": sb.ports()}))
}

/// `sandbox/connect`: a handle on a sandbox the daemon owns, by id (started when none runs).
pub async fn connect(server: &Arc<Server>, p: Value, cancel: &CancellationToken) -> Result<Value, RpcError> {
    let c: ConnectParams = params(p)?;
    let handle: SandboxConfig = params(c.config.unwrap_or_else(|| json!({})))?;
    let sb = dagger_sandbox_daemon_client::connect(c.state_dir.as_deref(), &c.sandbox_id, handle).await?;
    Ok(sandbox_json(&server.adopt(sb, cancel).await?))
}

async fn close(server: &Arc<Server>, p: Value) -> Result<Value, RpcError> {
    let r: CloseParams = params(p)?;
    let sb = server.sandbox(&r.sandbox_id)?;
    if r.delete {
        sb.delete().await?;
    } else {
        sb.close().await?;
    }
    Ok(json!({}))
}

/// `sandbox/create` with `persistent: true`: made through the daemon (started when none runs),
/// with `stateDir` and `ttlSeconds` for the daemon; `None` when the create is not persistent.
pub async fn create_persistent(
    server: &Arc<Server>,
    p: &mut Value,
    cancel: &CancellationToken,
) -> Option<Result<Value, RpcError>> {
    let obj: &mut Map<String, Value> = p.as_object_mut()?;
    let persistent = match obj.remove("persistent") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Some(Err(RpcError::invalid_params(format!("`persistent`: expected a boolean, got {other}"))))
        }
    };
    if !persistent {
        return None;
    }
    let state_dir = obj.remove("stateDir");
    let ttl = obj.remove("ttlSeconds");
    Some(
        async {
            let field = |name: &str, e: serde_json::Error| RpcError::invalid_params(format!("`{name}`: {e}"));
            let state_dir: Option<PathBuf> =
                serde_json::from_value(state_dir.unwrap_or(Value::Null)).map_err(|e| field("stateDir", e))?;
            let ttl: Option<u64> =
                serde_json::from_value(ttl.unwrap_or(Value::Null)).map_err(|e| field("ttlSeconds", e))?;
            let cfg: SandboxConfig = params(std::mem::take(p))?;
            let sb: Sandbox = dagger_sandbox_daemon_client::create_persistent(state_dir.as_deref(), cfg, ttl).await?;
            Ok(sandbox_json(&server.adopt(sb, cancel).await?))
        }
        .await,
    )
}

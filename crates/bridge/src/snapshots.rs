//! The snapshot methods: `sandbox/snapshot`, `sandbox/fromSnapshot`, and `snapshot/list`,
//! `snapshot/inspect`, `snapshot/delete`. Snapshots outlive the bridge: closing its sandboxes (or
//! EOF) never deletes one.

use std::sync::Arc;

use dagger_sandbox::{CancellationToken, Sandbox, SandboxConfig, Snapshot};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::methods::sandbox_json;
use crate::protocol::{params, RpcError};
use crate::server::Server;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TakeParams {
    sandbox_id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FromParams {
    /// The snapshot's id or name.
    snapshot: String,
    /// The rest of the config, as `sandbox/create` takes it (no image or template).
    #[serde(default)]
    config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefParams {
    /// The snapshot's id or name.
    snapshot: String,
}

/// `snapshot/list` takes no params; unknown ones are refused like everywhere else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn snapshot_json(s: &Snapshot) -> Value {
    json!(s)
}

/// The methods this module serves.
const METHODS: [&str; 5] =
    ["sandbox/snapshot", "sandbox/fromSnapshot", "snapshot/list", "snapshot/inspect", "snapshot/delete"];

/// Whether `method` is a snapshot method.
pub fn handles(method: &str) -> bool {
    METHODS.contains(&method)
}

/// Runs a snapshot method (one that [`handles`] says is).
pub async fn call(server: &Arc<Server>, method: &str, p: Value, cancel: &CancellationToken) -> Result<Value, RpcError> {
    match method {
        "sandbox/snapshot" => take(server, p).await,
        "sandbox/fromSnapshot" => from_snapshot(server, p, cancel).await,
        "snapshot/list" => match params::<NoParams>(p) {
            Ok(_) => Snapshot::list().await.map(|all| json!({ "snapshots": all })).map_err(RpcError::from),
            Err(e) => Err(e),
        },
        "snapshot/inspect" => match params::<RefParams>(p) {
            Ok(r) => Snapshot::inspect(&r.snapshot).await.map(|s| snapshot_json(&s)).map_err(RpcError::from),
            Err(e) => Err(e),
        },
        "snapshot/delete" => match params::<RefParams>(p) {
            Ok(r) => Snapshot::remove(&r.snapshot).await.map(|s| snapshot_json(&s)).map_err(RpcError::from),
            Err(e) => Err(e),
        },
        other => Err(RpcError::invalid_params(format!("not a snapshot method: {other}"))),
    }
}

async fn take(server: &Arc<Server>, p: Value) -> Result<Value, RpcError> {
    let t: TakeParams = params(p)?;
    let snap = server.sandbox(&t.sandbox_id)?.snapshot(t.name.as_deref()).await?;
    Ok(snapshot_json(&snap))
}

/// Like `sandbox/create`, never dropped half-way: a cancelled one finishes, then is closed.
async fn from_snapshot(server: &Arc<Server>, p: Value, cancel: &CancellationToken) -> Result<Value, RpcError> {
    let f: FromParams = params(p)?;
    let cfg: SandboxConfig = params(f.config.unwrap_or_else(|| json!({})))?;
    let sb = Sandbox::from_snapshot(&f.snapshot, cfg).await?;
    Ok(sandbox_json(&server.adopt(sb, cancel).await?))
}

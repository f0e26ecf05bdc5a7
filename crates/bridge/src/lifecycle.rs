//! `sandbox/stop` and `sandbox/resume`: a stopped sandbox keeps its files and runs nothing until
//! it is resumed; calls meanwhile fail with `STOPPED`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::protocol::{params, RpcError};
use crate::server::Server;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SandboxRef {
    sandbox_id: String,
}

/// Runs `sandbox/stop` or `sandbox/resume`; `None` for any other method.
pub async fn call(server: &Arc<Server>, method: &str, p: Value) -> Option<Result<Value, RpcError>> {
    let stop = match method {
        "sandbox/stop" => true,
        "sandbox/resume" => false,
        _ => return None,
    };
    Some(
        async {
            let r: SandboxRef = params(p)?;
            let sb = server.sandbox(&r.sandbox_id)?;
            if stop {
                sb.stop().await?;
            } else {
                sb.resume().await?;
            }
            Ok(json!({"stopped": sb.is_stopped(), "ports": sb.ports()}))
        }
        .await,
    )
}

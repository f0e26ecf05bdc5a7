//! The MCP server at `/mcp` (Streamable HTTP, behind the bearer token and the loopback guard): the
//! dagger-sandbox-mcp crate's service, with this daemon's sessions as the keeper of sandboxes made
//! with a ttl (they outlive the MCP session and are reaped like any session).

use std::sync::Arc;

use dagger_sandbox::Sandbox;
use dagger_sandbox_mcp::{KeepSpec, Keeper, LogLine, McpOptions, ToolError};

use crate::error::ApiError;
use crate::sessions::{CreateRequest, Sessions, REASON_STOPPED};

/// The daemon's sessions as an MCP keeper.
struct SessionKeeper(Arc<Sessions>);

fn tool_error(e: ApiError) -> ToolError {
    ToolError::new(e.code(), e.to_string())
}

#[async_trait::async_trait]
impl Keeper for SessionKeeper {
    async fn create(&self, spec: KeepSpec) -> Result<Sandbox, ToolError> {
        let req = CreateRequest {
            template: spec.template,
            image: spec.image,
            backend: spec.backend,
            ttl_seconds: Some(spec.ttl_seconds),
            ports: (!spec.ports.is_empty()).then_some(spec.ports),
            command: spec.command,
            env: spec.env,
            metadata: Some(serde_json::json!({"createdBy": "mcp"})),
            ..CreateRequest::default()
        };
        let s = self.0.create(req).await.map_err(tool_error)?;
        self.0
            .live(&s.id)
            .map(|l| l.sandbox.clone())
            .ok_or_else(|| ToolError::new("SESSION_ENDED", format!("session {} ended at once", s.id)))
    }

    fn get(&self, id: &str) -> Option<Sandbox> {
        self.0.live(id).map(|l| l.sandbox.clone())
    }

    fn list(&self) -> Vec<Sandbox> {
        self.0.live_ids().iter().filter_map(|id| self.get(id)).collect()
    }

    async fn close(&self, id: &str) -> Result<bool, ToolError> {
        if self.0.live(id).is_none() {
            return Ok(false);
        }
        Ok(self.0.stop(id, REASON_STOPPED).await.map_err(tool_error)?.is_some())
    }

    fn logs(&self, id: &str, since: u64, tail: usize) -> Option<(Vec<LogLine>, u64)> {
        // The daemon's log keeps no cursors: lines are numbered within what it still holds.
        let all = self.0.logs(id)?.tail(usize::MAX);
        let next = all.len() as u64;
        let lines: Vec<LogLine> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 >= since)
            .map(|(i, l)| LogLine {
                seq: i as u64,
                stream: l.stream.to_string(),
                text: l.text.trim_end_matches('\n').to_string(),
            })
            .collect();
        let skip = lines.len().saturating_sub(tail);
        Some((lines.into_iter().skip(skip).collect(), next))
    }
}

/// The `/mcp` service: options from the environment (`DAGGER_SANDBOX_MCP_IMAGE`, `_BACKEND`,
/// `_ROOTS`), sandboxes labelled with this daemon's owner (a restart removes the ones of ended
/// connections as orphans), sessions ended on `shutdown`.
pub fn service(
    sessions: &Arc<Sessions>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<dagger_sandbox_mcp::HttpService, ToolError> {
    let mut options = McpOptions::from_env()?;
    options.owner = Some(sessions.owner().to_string());
    let keeper: Arc<dyn Keeper> = Arc::new(SessionKeeper(sessions.clone()));
    Ok(dagger_sandbox_mcp::http_service(options, Some(keeper), shutdown))
}

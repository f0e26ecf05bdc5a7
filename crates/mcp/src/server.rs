//! The MCP server handler: one per connection (a stdio process, an HTTP session), holding that
//! connection's scope in the shared hub, and the helpers its tools share (progress notifications,
//! the client's roots, output caps).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool_handler, RoleServer, ServerHandler};

use crate::error::ToolError;
use crate::hub::{Hub, Scope};
use crate::roots::Roots;

/// Bytes of each output stream (and of file text) a result carries; the middle of longer output is
/// dropped and the result says so (`truncated`, `outputCapBytes`).
pub const OUTPUT_CAP_BYTES: usize = 256 * 1024;

/// How an MCP connection reaches the server, which decides what a connection's end is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A stdio process: the connection ends at EOF.
    Stdio,
    /// The daemon's `/mcp`: a 2025-era session ends with `DELETE` or its idle timeout; a
    /// 2026-07-28 (stateless) request has no connection, so its sandboxes are daemon sessions.
    Http,
}

/// The handler of one MCP connection.
#[derive(Clone)]
pub struct McpServer {
    pub(crate) hub: Arc<Hub>,
    pub(crate) scope: Arc<Scope>,
    pub(crate) transport: Transport,
    tool_router: ToolRouter<McpServer>,
}

impl McpServer {
    /// A handler for a new connection on `hub`.
    pub fn new(hub: Arc<Hub>, transport: Transport) -> Self {
        let scope = hub.scope();
        McpServer { hub, scope, transport, tool_router: crate::tools::router() }
    }

    /// The connection's scope (its sandboxes close with it).
    pub fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    /// Whether this request has no connection to tie a sandbox to (stateless HTTP).
    pub(crate) fn stateless(&self, ctx: &RequestContext<RoleServer>) -> bool {
        self.transport == Transport::Http && ctx.protocol_version().is_some_and(|v| !v.has_initialize())
    }

    /// The host directories this call may touch: `--root` dirs plus the client's declared roots
    /// (asked with `roots/list` on 2025-era connections whose client has the roots capability).
    #[allow(deprecated)] // roots are deprecated by SEP-2577 but are how clients name their workspaces today
    pub(crate) async fn roots(&self, ctx: &RequestContext<RoleServer>) -> Roots {
        let base = &self.hub.options.roots;
        let handshake = ctx.protocol_version().is_none_or(|v| v.has_initialize());
        let declared = ctx.peer.peer_info().is_some_and(|i| i.capabilities.roots.is_some());
        if !handshake || !declared {
            return base.clone();
        }
        let listed = tokio::time::timeout(std::time::Duration::from_secs(10), ctx.peer.list_roots()).await;
        match listed {
            Ok(Ok(r)) => base.with_client_uris(r.roots.iter().map(|root| root.uri.as_str())),
            Ok(Err(e)) => {
                tracing::warn!("roots/list failed: {e}");
                base.clone()
            }
            Err(_) => {
                tracing::warn!("roots/list got no answer in 10 s");
                base.clone()
            }
        }
    }

    /// The scope what this request makes belongs to: the connection's, or the shared one of
    /// stateless requests.
    pub(crate) fn owner(&self, ctx: &RequestContext<RoleServer>) -> u64 {
        if self.stateless(ctx) {
            crate::hub::SHARED_SCOPE
        } else {
            self.scope.id()
        }
    }

    /// The sandbox `id` for this connection.
    pub(crate) fn sandbox(&self, id: &str) -> Result<dagger_sandbox::Sandbox, ToolError> {
        self.hub.sandbox(self.scope.id(), id)
    }
}

/// Sends progress notifications for one request, when the client asked for them (a progress
/// token in `_meta`); silently nothing otherwise.
pub(crate) struct Progress {
    token: Option<rmcp::model::ProgressToken>,
    peer: rmcp::Peer<RoleServer>,
    count: f64,
}

impl Progress {
    /// The progress channel of the request `ctx`.
    pub(crate) fn of(ctx: &RequestContext<RoleServer>) -> Self {
        Progress { token: ctx.meta.get_progress_token(), peer: ctx.peer.clone(), count: 0.0 }
    }

    /// Says `message` (a piece of output, a stage); never fails the call.
    pub(crate) async fn say(&mut self, message: String) {
        let Some(token) = &self.token else { return };
        self.count += 1.0;
        let mut p = ProgressNotificationParam::new(token.clone(), self.count);
        p.message = Some(message);
        if let Err(e) = self.peer.notify_progress(p).await {
            tracing::debug!("progress notification not delivered: {e}");
        }
    }
}

/// `text` cut to [`OUTPUT_CAP_BYTES`]: head and tail kept, the middle replaced by a marker.
pub(crate) fn cap(text: String) -> (String, bool) {
    if text.len() <= OUTPUT_CAP_BYTES {
        return (text, false);
    }
    let half = OUTPUT_CAP_BYTES / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let dropped = tail_start - head_end;
    let out = format!(
        "{}\n[... {dropped} bytes cut: results carry at most {OUTPUT_CAP_BYTES} bytes per stream ...]\n{}",
        &text[..head_end],
        &text[tail_start..]
    );
    (out, true)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("dagger-sandbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Isolated sandboxes for running code: sandbox_create, then sandbox_exec and the file_* tools; \
                 validate_project runs a host project's install and tests in a fresh sandbox. Host paths must be \
                 inside the client's roots or the server's --root directories. Sandboxes close when this connection ends.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_keep_head_and_tail_on_char_boundaries_and_say_so() {
        let (s, cut) = cap("short".into());
        assert_eq!((s.as_str(), cut), ("short", false));
        let big = format!("{}{}", "é".repeat(OUTPUT_CAP_BYTES), "END");
        let (s, cut) = cap(big);
        assert!(cut);
        assert!(s.len() < OUTPUT_CAP_BYTES + 200);
        assert!(s.ends_with("END") && s.starts_with('é'));
        assert!(s.contains(&format!("at most {OUTPUT_CAP_BYTES} bytes")));
    }
}

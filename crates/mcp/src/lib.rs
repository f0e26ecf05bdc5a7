//! dagger-sandbox as a Model Context Protocol server, on the official Rust SDK (`rmcp`): sandboxes,
//! their files and commands, host import/export limited to roots, and `validate_project` as tools
//! for coding agents. Served on stdio (`dagger-sandbox mcp`) and by the daemon at `/mcp`
//! (Streamable HTTP). See docs/mcp.md.

mod error;
mod hub;
mod logring;
mod roots;
mod server;
mod tools;

use std::sync::Arc;

pub use error::{ToolError, PATH_OUTSIDE_ROOTS};
pub use hub::{Hub, KeepSpec, Keeper, McpOptions, ENV_BACKEND, ENV_IMAGE, ENV_ROOTS};
pub use logring::LogLine;
pub use roots::Roots;
pub use server::{McpServer, Transport, OUTPUT_CAP_BYTES};
pub use tools::SandboxView;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;

/// Serves MCP on this process's stdin/stdout until the client closes stdin, then closes every
/// sandbox the connection made.
pub async fn serve_stdio(options: McpOptions) -> std::io::Result<()> {
    let hub = Hub::new(options, None);
    let server = McpServer::new(hub, Transport::Stdio);
    let scope = server.scope().clone();
    let result = match server.serve(rmcp::transport::stdio()).await {
        Ok(running) => running.waiting().await.map(|_| ()).map_err(std::io::Error::other),
        Err(e) => Err(std::io::Error::other(format!("MCP initialization failed: {e}"))),
    };
    scope.close_all().await;
    result
}

/// The `/mcp` service's type, for routers that mount it.
pub type HttpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// The Streamable HTTP service the daemon mounts at `/mcp` (authentication and the Host/Origin
/// guard are the daemon's); `keeper` holds sandboxes made with a ttl, `shutdown` ends every session.
pub fn http_service(
    options: McpOptions,
    keeper: Option<Arc<dyn Keeper>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> HttpService {
    let hub = Hub::new(options, keeper);
    let config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    StreamableHttpService::new(
        move || Ok(McpServer::new(hub.clone(), Transport::Http)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

//! The HTTP accept loop, with read deadlines `axum::serve` does not offer: a client that sends half
//! its headers, or stops in the middle of a body, is cut off instead of holding a connection (and
//! its task) open forever.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Default time a client has to send a request's headers (`--header-timeout`); an idle keep-alive
/// connection is closed after it too.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest pause inside a request body (`--body-timeout`); a body may take as long as it
/// needs in total as long as bytes keep coming.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to read its request.
#[derive(Debug, Clone, Copy)]
pub struct ReadTimeouts {
    /// For the request line and headers (and the wait on an idle keep-alive connection).
    pub headers: Duration,
    /// For each pause between chunks of a request body.
    pub body_idle: Duration,
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: ReadTimeouts,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(timeouts.body_idle));
    let conns = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning, keep serving.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        conns.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(timeouts.headers);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    conns.close();
    conns.wait().await;
    Ok(())
}

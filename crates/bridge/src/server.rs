//! The bridge's state and loop: reads frames, answers protocol errors at once, runs each request
//! as its own task (so a slow exec never blocks anything else), and closes every sandbox it
//! created when the input ends or `shutdown` arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dagger_sandbox::{CancellationToken, Error, Sandbox};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio_util::task::TaskTracker;

use crate::framing::{spawn_writer, Frame, LineReader, Outgoing};
use crate::methods;
use crate::protocol::{codes, error_response, params, parse, response, Incoming, RpcError, PROTOCOL_VERSIONS};

/// How long requests still running at shutdown may take to finish writing their answers.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Everything the requests of one bridge process share.
pub struct Server {
    /// Where responses and notifications go.
    pub out: Outgoing,
    /// Numbers `execId`s.
    pub exec_counter: AtomicU64,
    sandboxes: Mutex<HashMap<String, Sandbox>>,
    inflight: Mutex<HashMap<String, CancellationToken>>,
    initialized: AtomicBool,
    shutting_down: AtomicBool,
    max_line: usize,
}

impl Server {
    /// The sandbox named `id`; an unknown id is `NOT_FOUND`, a closed one answers `CLOSED` itself.
    pub fn sandbox(&self, id: &str) -> Result<Sandbox, RpcError> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned().ok_or_else(|| {
            RpcError::from(Error::NotFound { sandbox: id.to_string(), what: "sandbox", path: id.to_string() })
        })
    }

    /// Registers a new sandbox, unless the request was cancelled or the bridge is shutting down,
    /// in which case it is closed at once so nothing leaks.
    pub async fn adopt(&self, sb: Sandbox, cancel: &CancellationToken) -> Result<Sandbox, RpcError> {
        let refused = {
            let mut map = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
            if self.shutting_down.load(Ordering::SeqCst) {
                Some(Error::Closed { sandbox: sb.id().to_string() })
            } else if cancel.is_cancelled() {
                Some(Error::Cancelled { sandbox: sb.id().to_string(), op: "create".into() })
            } else {
                map.insert(sb.id().to_string(), sb.clone());
                None
            }
        };
        match refused {
            None => Ok(sb),
            Some(e) => {
                let _ = sb.close().await;
                Err(e.into())
            }
        }
    }

    /// Closes every sandbox; later creates are refused.
    async fn close_all(&self) {
        let all: Vec<Sandbox> = {
            let map = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
            self.shutting_down.store(true, Ordering::SeqCst);
            map.values().cloned().collect()
        };
        for r in futures_util::future::join_all(all.iter().map(|s| s.close())).await {
            if let Err(e) = r {
                tracing::warn!("closing a sandbox at shutdown failed: {e}");
            }
        }
        tracing::info!(sandboxes = all.len(), "closed every sandbox");
        for t in self.inflight.lock().unwrap_or_else(|p| p.into_inner()).values() {
            t.cancel();
        }
    }

    async fn initialize(&self, id: &Value, p: Value) {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)] // read for validation; clientInfo is only logged
        struct InitializeParams {
            protocol_version: String,
            client_info: Option<Value>,
        }
        if self.initialized.load(Ordering::SeqCst) {
            let e = RpcError::new(codes::INVALID_REQUEST, "invalid request: already initialized");
            return self.out.send(&error_response(id, &e)).await;
        }
        let p: InitializeParams = match params(p) {
            Ok(p) => p,
            Err(e) => return self.out.send(&error_response(id, &e)).await,
        };
        let version = if PROTOCOL_VERSIONS.contains(&p.protocol_version.as_str()) {
            p.protocol_version
        } else {
            PROTOCOL_VERSIONS[0].to_string()
        };
        let docker = match dagger_sandbox::engines::docker_available().await {
            Ok(v) => json!({"name": "docker", "available": true, "isolation": "container",
                            "detail": format!("Docker {} (API {})", v.version, v.api_version)}),
            Err(why) => json!({"name": "docker", "available": false, "isolation": "container", "detail": why}),
        };
        // Local checks only (a session in the env, or a CLI plus a runtime): `initialize` never
        // waits on an engine connect.
        let dagger = match dagger_sandbox::engines::dagger_plausible() {
            Ok(()) => json!({"name": "dagger", "available": true, "isolation": "container",
                             "detail": "an engine is in sight (session, or CLI plus a container runtime); not connected yet"}),
            Err(why) => json!({"name": "dagger", "available": false, "isolation": "container", "detail": why}),
        };
        let result = json!({
            "protocolVersion": version,
            "serverInfo": {"name": "dagger-sandbox-bridge", "version": env!("CARGO_PKG_VERSION")},
            "backends": [
                dagger,
                docker,
                {"name": "local", "available": true, "isolation": "process",
                 "detail": "host processes in a private directory"},
            ],
            "capabilities": {"streaming": true, "cancel": true, "encodings": ["utf8", "base64"], "snapshots": true,
                             "maxLineBytes": self.max_line},
        });
        self.initialized.store(true, Ordering::SeqCst);
        self.out.send(&response(id, result)).await;
    }

    fn notification(&self, method: &str, p: Value) {
        if method == "$/cancelRequest" {
            if let Some(id) = p.get("id").filter(|id| id.is_number() || id.is_string()) {
                if let Some(t) = self.inflight.lock().unwrap_or_else(|p| p.into_inner()).get(&id.to_string()) {
                    t.cancel();
                }
            }
        } else {
            tracing::debug!(method, "ignored notification");
        }
    }
}

/// The answer to a request that the bridge's shutdown (EOF or `shutdown`) cut short.
fn closed_by_shutdown(key: &str) -> RpcError {
    RpcError {
        code: codes::SANDBOX_ERROR,
        message: format!("request {key} did not finish: the bridge is shutting down (stdin closed or `shutdown`)"),
        data: Some(json!({"code": dagger_sandbox::ErrorCode::Closed.as_str()})),
    }
}

/// Serves the protocol on `input`/`output` until EOF or `shutdown`, then closes every sandbox.
pub async fn run<R, W>(input: R, output: W, max_line: usize)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, writer) = spawn_writer(output);
    let server = Arc::new(Server {
        out: out.clone(),
        exec_counter: AtomicU64::new(0),
        sandboxes: Mutex::new(HashMap::new()),
        inflight: Mutex::new(HashMap::new()),
        initialized: AtomicBool::new(false),
        shutting_down: AtomicBool::new(false),
        max_line,
    });
    let tasks = TaskTracker::new();
    let mut reader = LineReader::new(input, max_line);
    let mut shutdown_id = None;
    loop {
        let frame = reader.next().await.unwrap_or_else(|e| {
            tracing::warn!("reading stdin failed: {e}; shutting down");
            Frame::Eof
        });
        let line = match frame {
            Frame::Eof => break,
            Frame::TooLong => {
                let e = RpcError::new(
                    codes::INVALID_REQUEST,
                    format!("invalid request: the line is longer than {max_line} bytes and was skipped"),
                );
                out.send(&error_response(&Value::Null, &e)).await;
                continue;
            }
            Frame::Line(line) => line,
        };
        let (id, method, p) = match parse(&line) {
            Ok(None) => continue,
            Err((id, e)) => {
                out.send(&error_response(&id, &e)).await;
                continue;
            }
            Ok(Some(Incoming::Notification { method, params })) => {
                server.notification(&method, params);
                continue;
            }
            Ok(Some(Incoming::Request { id, method, params })) => (id, method, params),
        };
        if method == "initialize" {
            server.initialize(&id, p).await;
            continue;
        }
        if !server.initialized.load(Ordering::SeqCst) {
            let e = RpcError::new(codes::NOT_INITIALIZED, "not initialized: send `initialize` first");
            out.send(&error_response(&id, &e)).await;
            continue;
        }
        if method == "shutdown" {
            shutdown_id = Some(id);
            break;
        }
        let key = id.to_string();
        let token = CancellationToken::new();
        let duplicate = {
            let mut inflight = server.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let duplicate = inflight.contains_key(&key);
            if !duplicate {
                inflight.insert(key.clone(), token.clone());
            }
            duplicate
        };
        if duplicate {
            let e = RpcError::new(codes::INVALID_REQUEST, format!("invalid request: id {key} is already in use"));
            out.send(&error_response(&id, &e)).await;
            continue;
        }
        let server = server.clone();
        tasks.spawn(async move {
            // A bug must cost one answer, not the bridge and every other caller's requests.
            let call = std::panic::AssertUnwindSafe(methods::call(&server, &id, &method, p, token));
            let result = futures_util::FutureExt::catch_unwind(call).await.unwrap_or_else(|_| {
                Err(RpcError::new(
                    codes::INTERNAL_ERROR,
                    format!("internal error: the bridge failed handling {method}"),
                ))
            });
            server.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            let msg = match result {
                Ok(v) => response(&id, v),
                Err(mut e) => {
                    if e.code == codes::REQUEST_CANCELLED && server.shutting_down.load(Ordering::SeqCst) {
                        // Cancelled by the shutdown, not by the client: the documented answer for
                        // requests in flight at EOF or `shutdown` is CLOSED.
                        e = closed_by_shutdown(&key);
                    } else if e.code == codes::REQUEST_CANCELLED {
                        e.message = format!("request {key} was cancelled");
                    }
                    error_response(&id, &e)
                }
            };
            server.out.send(&msg).await;
        });
    }
    server.close_all().await;
    tasks.close();
    if tokio::time::timeout(DRAIN_LIMIT, tasks.wait()).await.is_err() {
        tracing::warn!("requests still running {} s after shutdown; exiting anyway", DRAIN_LIMIT.as_secs());
    }
    if let Some(id) = shutdown_id {
        out.send(&response(&id, json!({}))).await;
    }
    drop(server);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

//! The daemon's `/mcp` endpoint (Streamable HTTP, a 2025-11-25 session) keeps a sandbox made with
//! `ttlSeconds` as a daemon session: the REST API sees it, `sandbox_list` and `service_logs` reach
//! it through the daemon, and `sandbox_close` ends the session and removes its container. Raw
//! JSON-RPC over HTTP, as any client sends it (the Python SDK suite covers the SDK's own flow).

mod common;

use std::time::Duration;

use common::{container_exists, state_dir, Daemon, BUSYBOX};
use reqwest::Method;
use serde_json::{json, Value};

/// One MCP session over the daemon's `/mcp`.
struct Mcp<'a> {
    daemon: &'a Daemon,
    session: Option<String>,
    next_id: u64,
}

impl Mcp<'_> {
    /// POSTs one JSON-RPC message; returns the response to it (from JSON or an SSE stream), or
    /// `Null` for a notification.
    async fn send(&mut self, method: &str, params: Value, notification: bool) -> Value {
        let mut msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let id = self.next_id;
        if !notification {
            msg["id"] = json!(id);
            self.next_id += 1;
        }
        let mut req = self
            .daemon
            .req(Method::POST, "/mcp")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-11-25")
            .json(&msg);
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{method}: HTTP {}", resp.status());
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_string());
        }
        let body = resp.text().await.unwrap();
        if notification {
            return Value::Null;
        }
        // A JSON body, or SSE events whose data lines carry JSON-RPC messages.
        let candidates: Vec<Value> = match serde_json::from_str(&body) {
            Ok(v) => vec![v],
            Err(_) => body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect(),
        };
        candidates
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("{method}: no response in {body}"))
    }

    /// Calls a tool and returns its structured result; panics on a tool error.
    async fn tool(&mut self, name: &str, args: Value) -> Value {
        let r = self.send("tools/call", json!({"name": name, "arguments": args}), false).await;
        let result = &r["result"];
        assert_ne!(result["isError"], json!(true), "{name}: {r}");
        result["structuredContent"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_sandbox_with_a_ttl_is_a_daemon_session_from_create_to_close() {
    std::env::set_var(dagger_sandbox_mcp::ENV_BACKEND, "docker");
    let (_cleanup, dir) = state_dir();
    let daemon = Daemon::start(dir.path(), Duration::from_secs(60)).await;
    let mut mcp = Mcp { daemon: &daemon, session: None, next_id: 1 };
    let init = mcp
        .send(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
            false,
        )
        .await;
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    mcp.send("notifications/initialized", json!({}), true).await;

    let made = mcp
        .tool(
            "sandbox_create",
            json!({"image": BUSYBOX, "ttlSeconds": 600, "command": "echo service-started; exec sleep 600"}),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["lifetime"], "ttl", "{made}");

    // A daemon session like any other: the REST API has it, made by mcp.
    let (status, session) = daemon.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["status"], "active", "{session}");
    let container = session["containerId"].as_str().unwrap().to_string();
    assert!(container_exists(&container).await);

    let listed = mcp.tool("sandbox_list", json!({})).await;
    assert!(listed["sandboxes"].as_array().unwrap().iter().any(|s| s["id"] == json!(id)), "{listed}");

    // The service's output, read through the daemon's session log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = mcp.tool("service_logs", json!({"sandbox": id, "tail": 50})).await;
        if seen["lines"].as_array().unwrap().iter().any(|l| l["text"] == "service-started") {
            break seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "the service's output is in its logs: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let next = seen["next"].as_u64().unwrap();
    let later = mcp.tool("service_logs", json!({"sandbox": id, "since": next})).await;
    assert!(later["lines"].as_array().unwrap().iter().all(|l| l["seq"].as_u64().unwrap() >= next), "{later}");

    let closed = mcp.tool("sandbox_close", json!({"sandbox": id})).await;
    assert_eq!(closed["closed"], true, "{closed}");
    let (_, session) = daemon.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(session["status"], "terminated", "{session}");
    assert!(!container_exists(&container).await, "its container is removed");
    daemon.server.shutdown().await;
}

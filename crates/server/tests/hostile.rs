//! Hostile requests written by hand, for what a schema-driven fuzzer does not send: broken JSON,
//! bodies past the limits, ids that are not UTF-8, foreign hosts and origins, methods no route
//! serves. Each gets the documented `{"error": {"code", "message"}}` with a 4xx status, and the
//! daemon keeps serving (scripts/schemathesis.sh covers the schema-driven side).

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// One hostile request: method, path (with query), extra headers, raw body.
struct Hostile {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn h(method: Method, path: impl Into<String>, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Hostile {
    Hostile { method, path: path.into(), headers: vec![], body: body.into(), status, code }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hostile_request_gets_a_typed_json_error_and_the_daemon_keeps_serving() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), Duration::from_secs(300)).await;
    let id = d.create(json!({})).await["id"].as_str().unwrap().to_string();
    let ended = d.create(json!({})).await["id"].as_str().unwrap().to_string();
    assert_eq!(d.call(Method::DELETE, &format!("/api/sandbox/{ended}"), None).await.0, 200);
    let s = format!("/api/sandbox/{id}");
    let nested = format!("{{\"metadata\": {}1{}}}", "[".repeat(2000), "]".repeat(2000));
    let (post, get, put) = (Method::POST, Method::GET, Method::PUT);
    let mut cases = vec![
        h(post.clone(), "/api/sandbox", "{not json", 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", "[]", 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", "null", 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", "\"a string\"", 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", b"\xff\xfe{}".to_vec(), 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", nested, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", vec![b' '; 3 << 20], 413, "TOO_LARGE"),
        h(post.clone(), "/api/sandbox", r#"{"ttlSeconds": -1}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ttlSeconds": 1e400}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ttlSeconds": 3600.5}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ttlSeconds": "3600"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ttlSeconds": 99999999999}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ports": [65536], "command": "x"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"ports": [80.5], "command": "x"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"env": {"A=B": "x"}}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"env": {"": "x"}}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"env": {"A": "\u0000"}}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"env": {"A": 1}}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"workingDirectory": "rel"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"metadata": "text"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"backend": "podman"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"template": "cobol"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"image": " "}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), "/api/sandbox", r#"{"backend": "dagger", "command": "x"}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), "{}", 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": ""}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": 5}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": "true", "timeoutMs": 0}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": "true", "env": {"A": "\u0000"}}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": "true", "cwd": "a\u0000"}"#, 400, "INVALID_PATH"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": "true", "cwd": "/nowhere"}"#, 409, "NOT_FOUND"),
        h(post.clone(), format!("{s}/exec"), r#"{"command": "true", "sudo": true}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("/api/sandbox/{ended}/exec"), r#"{"command": "true"}"#, 409, "SESSION_ENDED"),
        h(post.clone(), "/api/sandbox/sbx-000000000000/exec", r#"{"command": "true"}"#, 404, "NOT_FOUND"),
        h(post.clone(), format!("{s}/extend"), "{}", 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/extend"), r#"{"ttlSeconds": 0}"#, 400, "INVALID_ARGUMENT"),
        h(post.clone(), format!("{s}/extend"), r#"{"ttlSeconds": 99999999999}"#, 400, "INVALID_ARGUMENT"),
        h(get.clone(), format!("{s}/files"), "", 400, "INVALID_ARGUMENT"),
        h(get.clone(), format!("{s}/files?path="), "", 400, "INVALID_ARGUMENT"),
        h(get.clone(), format!("{s}/files?path=%00"), "", 400, "INVALID_PATH"),
        h(get.clone(), format!("{s}/files?path=/"), "", 400, "INVALID_ARGUMENT"),
        h(get.clone(), format!("{s}/files?path=/nope"), "", 404, "NOT_FOUND"),
        h(put.clone(), format!("{s}/files?path=/"), "x", 400, "INVALID_PATH"),
        h(put.clone(), format!("{s}/files?path=a&mode=9999"), "x", 400, "INVALID_ARGUMENT"),
        h(put.clone(), format!("{s}/files?path=a&mode=abc"), "x", 400, "INVALID_ARGUMENT"),
        h(get.clone(), "/api/sandbox/%FF", "", 400, "INVALID_ARGUMENT"),
        h(get.clone(), "/api/sandbox?all=maybe", "", 400, "INVALID_ARGUMENT"),
        h(get.clone(), format!("{s}/logs?follow=yes"), "", 400, "INVALID_ARGUMENT"),
        h(Method::TRACE, "/api/sandbox", "", 405, "METHOD_NOT_ALLOWED"),
        h(Method::PATCH, s.clone(), "{}", 405, "METHOD_NOT_ALLOWED"),
        h(get.clone(), "/no/such/route", "", 404, "NOT_FOUND"),
    ];
    let mut with = |headers: Vec<(&'static str, String)>, method: Method, path: &str, status, code| {
        cases.push(Hostile { method, path: path.to_string(), headers, body: vec![], status, code });
    };
    with(vec![("authorization", "Bearer wrong".into())], Method::GET, "/api/sandbox", 401, "UNAUTHORIZED");
    with(vec![("authorization", "Basic Zm9vOmJhcg==".into())], Method::GET, "/api/sandbox", 401, "UNAUTHORIZED");
    with(vec![("host", "evil.example".into())], Method::GET, "/api/health", 403, "FORBIDDEN");
    with(vec![("origin", "https://evil.example".into())], Method::DELETE, "/api/sandbox", 403, "FORBIDDEN");

    // A client of its own that keeps no connection: after a refused oversized body the daemon
    // closes the connection, which a pooled client would otherwise reuse.
    let hostile = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let total = cases.len();
    let mut typed = 0;
    for c in cases {
        let mut r = hostile.request(c.method.clone(), d.url(&c.path)).body(c.body);
        if !c.headers.iter().any(|(k, _)| *k == "authorization") {
            r = r.bearer_auth(&d.server.token);
        }
        for (k, v) in &c.headers {
            r = r.header(*k, v);
        }
        let resp = r.send().await.expect("answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} {}: not JSON ({e}): {text}", c.method, c.path));
        let what = format!("{} {}", c.method, &c.path[..c.path.len().min(80)]);
        assert_eq!((status, v["error"]["code"].as_str()), (c.status, Some(c.code)), "{what}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
        typed += 1;
        let (status, _) = d.call(Method::GET, "/api/health", None).await;
        assert_eq!(status, 200, "the daemon still serves after {what}");
    }
    println!("REST hand-written hostile inputs: {total}, typed errors: {typed}");
    assert!(total >= 40);
    // Nothing was created by any of it: the one live session is the test's own.
    let (_, list) = d.call(Method::GET, "/api/sandbox", None).await;
    assert_eq!(list["sandboxes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(containers_of(&d.owner()).await.len(), 1);
    assert_eq!(d.call(Method::DELETE, "/api/sandbox", None).await.0, 200);
    assert!(containers_of(&d.owner()).await.is_empty());
    d.server.shutdown().await;
}

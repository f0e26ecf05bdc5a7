//! The daemon's limits on a real Docker engine: a cap on live sandboxes, and read deadlines that
//! cut off clients which stop sending in the middle of a request.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_beyond_max_sandboxes_is_refused_until_one_is_stopped() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start_with(dir.path(), |o| o.max_sandboxes = 2).await;
    let body = || Some(json!({"image": BUSYBOX, "backend": "docker"}));
    let first = d.create(json!({})).await;
    d.create(json!({})).await;
    let (status, v) = d.call(Method::POST, "/api/sandbox", body()).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("QUOTA_EXCEEDED")), "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("--max-sandboxes") && message.contains('2'), "{message}");
    assert_eq!(containers_of(&d.owner()).await.len(), 2, "the refused create made no container");

    let id = first["id"].as_str().unwrap();
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200);
    // A create that fails gives its place back: after it, the free place is still there.
    let (status, v) = d.call(Method::POST, "/api/sandbox", Some(json!({"ttlSeconds": 0}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{v}");
    let (status, v) = d.call(Method::POST, "/api/sandbox", body()).await;
    assert_eq!(status, 201, "after a stop there is room again: {v}");
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 2})));
    assert!(containers_of(&d.owner()).await.is_empty());
    d.server.shutdown().await;
}

/// Reads from `stream` until the peer closes it (Ok) or `limit` passes (Err).
fn wait_closed(stream: &mut std::net::TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("still open after {limit:?} ({e}); read so far: {got:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_sending_half_its_headers_or_half_a_body_is_cut_off() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start_with(dir.path(), |o| {
        o.header_timeout = Duration::from_secs(1);
        o.body_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = d.server.addr;
    let token = d.server.token.clone();
    tokio::task::spawn_blocking(move || {
        // Half the headers, then silence: the daemon closes the connection.
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
        let started = Instant::now();
        wait_closed(&mut half, Duration::from_secs(20)).expect("half-sent headers are cut off");
        eprintln!("half-sent headers were cut off after {:?}", started.elapsed());

        // Headers complete, body promised but only half sent: the request fails and the
        // connection closes.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/sandbox HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"image\": "
        );
        slow.write_all(head.as_bytes()).unwrap();
        let answer = wait_closed(&mut slow, Duration::from_secs(20)).expect("a stalled body is cut off");
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.starts_with("HTTP/1.1 201"), "nothing is created from half a body: {answer}");
    })
    .await
    .unwrap();
    // The daemon still serves, and nothing was created.
    let (status, _) = d.call(Method::GET, "/api/health", None).await;
    assert_eq!(status, 200);
    assert!(containers_of(&d.owner()).await.is_empty());
    d.server.shutdown().await;
}

//! REST file transfers on a real Docker engine: streamed both ways, with documented limits, and a
//! body that breaks halfway writes nothing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use dagger_sandbox_server::api::{MAX_DOWNLOAD_BYTES, MAX_UPLOAD_BYTES};
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);
const MIB: usize = 1024 * 1024;

fn is_error(v: &Value, code: &str) -> bool {
    v["error"]["code"] == code && v["error"]["message"].as_str().is_some_and(|m| !m.is_empty())
}

/// A chunked body of `chunks` pieces of 1 MiB (no Content-Length), each byte its chunk's number.
fn chunked(chunks: usize) -> reqwest::Body {
    let pieces = (0..chunks).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; MIB])));
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_stream_both_ways_within_documented_limits() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d.create(json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let files = |path: &str| format!("/api/sandbox/{id}/files?path={path}");

    // A chunked upload of 40 MiB arrives byte for byte, and comes back with its length.
    let put = d.req(Method::PUT, &files("big.bin")).body(chunked(40));
    assert_eq!(put.send().await.unwrap().status(), 204);
    let got = d.req(Method::GET, &files("big.bin")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-length"], (40 * MIB).to_string().as_str());
    let body = got.bytes().await.unwrap();
    assert_eq!(body.len(), 40 * MIB);
    assert!(body.chunks(MIB).enumerate().all(|(i, c)| c.iter().all(|b| *b == i as u8)));

    // One byte over the upload limit is 413 TOO_LARGE and writes nothing.
    let over = (MAX_UPLOAD_BYTES as usize).div_ceil(MIB) + 1;
    let put = reqwest::Client::new()
        .put(d.url(&files("over.bin")))
        .bearer_auth(&d.server.token)
        .body(chunked(over))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 413);
    assert!(is_error(&put.json().await.unwrap(), "TOO_LARGE"));
    let (status, _) = d.call(Method::GET, &files("over.bin"), None).await;
    assert_eq!(status, 404, "an upload over the limit writes nothing");

    // A body that breaks halfway leaves the file as it was.
    let put = d.req(Method::PUT, &files("keep.txt")).body("old");
    assert_eq!(put.send().await.unwrap().status(), 204);
    let broken = futures_util::stream::iter([Ok(Bytes::from(vec![b'x'; MIB])), Err(std::io::Error::other("cut"))]);
    let r = reqwest::Client::new()
        .put(d.url(&files("keep.txt")))
        .bearer_auth(&d.server.token)
        .body(reqwest::Body::wrap_stream(broken))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    let got = d.req(Method::GET, &files("keep.txt")).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"old");

    // A file over the download limit (a 64 GB sparse one too) is 413 before any of it is read.
    let exec = json!({"command": format!("truncate -s {} over && truncate -s 64G huge", MAX_DOWNLOAD_BYTES + 1)});
    let (status, r) = d.call(Method::POST, &format!("/api/sandbox/{id}/exec"), Some(exec)).await;
    assert_eq!((status, r["exitCode"].as_i64()), (200, Some(0)), "{r}");
    for path in ["over", "huge"] {
        let (status, r) = d.call(Method::GET, &files(path), None).await;
        assert_eq!(status, 413, "{path}: {r}");
        assert!(is_error(&r, "TOO_LARGE"), "{r}");
    }
    d.server.shutdown().await;
}

//! Prints peak memory (VmHWM) while big data moves through the daemon and the bridge, for the
//! figures in docs/rest-api.md ("Memory"). Not a test: it asserts nothing, it measures.
//!
//! ```sh
//! cargo build -p dagger-sandbox-bridge
//! cargo run -p dagger-sandbox-server --example memory_figures
//! ```
//!
//! The daemon runs in this process on 127.0.0.1:0 (its peak includes the client, which streams and
//! discards); the peak is reset before each case (`/proc/self/clear_refs`), so each figure is that
//! case's own. The bridge is the binary next to this example, measured from `/proc/<pid>/status`.
//! Needs Docker and the test image `dagger-sandbox-test/busybox:latest` (scripts/engine.sh).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
const IMAGE: &str = "dagger-sandbox-test/busybox:latest";
/// A command that prints 200 MB.
const PRINT_200MB: &str = "head -c 200000000 /dev/zero | tr '\\0' x";

fn status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Resets this process's peak RSS to its current RSS.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak (/proc/self/clear_refs: {e}); figures are peaks since start");
    }
}

fn report(case: &str, started: Instant, extra: &str) {
    let (rss, peak) = (status_kib("self", "VmRSS:"), status_kib("self", "VmHWM:"));
    println!(
        "{case:<48} peak {:>6.1} MiB  (now {:>6.1} MiB)  {:>6.2} s  {extra}",
        peak as f64 / 1024.0,
        rss as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
}

/// A body of `len` bytes made as it is sent (1 MiB pieces), never held whole.
fn generated(len: u64) -> reqwest::Body {
    let piece = Bytes::from(vec![b'z'; MIB as usize]);
    let pieces = (0..len.div_ceil(MIB)).map(move |i| {
        let n = (len - i * MIB).min(MIB) as usize;
        Ok::<_, std::io::Error>(piece.slice(..n))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self.req(method, path).json(&body).send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let server = dagger_sandbox_server::start(dagger_sandbox_server::ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        state_dir: state.path().to_path_buf(),
        reap_interval: Duration::from_secs(300),
        pools: Vec::new(),
    })
    .await?;
    let api = Api { http: reqwest::Client::new(), base: server.base_url(), token: server.token.to_string() };
    println!("in-process daemon (debug build unless built with --release); baseline:");
    reset_peak();
    report("daemon started", Instant::now(), "");

    let (status, s) =
        api.json(reqwest::Method::POST, "/api/sandbox", json!({"image": IMAGE, "backend": "docker"})).await;
    anyhow::ensure!(status == 201, "create: {status} {s}");
    let id = s["id"].as_str().unwrap_or_default().to_string();
    let files = |p: &str| format!("/api/sandbox/{id}/files?path={p}");

    reset_peak();
    let t = Instant::now();
    let (status, r) =
        api.json(reqwest::Method::POST, &format!("/api/sandbox/{id}/exec"), json!({"command": PRINT_200MB})).await;
    let kept = r["stdout"].as_str().map(str::len).unwrap_or(0);
    report("REST exec printing 200 MB", t, &format!("status {status}, {kept} bytes of stdout kept"));

    let (status, r) = api
        .json(
            reqwest::Method::POST,
            &format!("/api/sandbox/{id}/exec"),
            json!({"command": "truncate -s 64G huge && truncate -s 200M mid"}),
        )
        .await;
    anyhow::ensure!(status == 200, "truncate: {status} {r}");
    reset_peak();
    let t = Instant::now();
    let r = api.req(reqwest::Method::GET, &files("huge")).send().await?;
    let status = r.status().as_u16();
    let code = r.json::<Value>().await.map(|v| v["error"]["code"].clone()).unwrap_or(Value::Null);
    report("REST GET of a 64 GB sparse file", t, &format!("status {status} {code}"));

    reset_peak();
    let t = Instant::now();
    let mut r = api.req(reqwest::Method::GET, &files("mid")).send().await?.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = r.next().await {
        got += chunk?.len() as u64;
    }
    report("REST GET of a 200 MiB file", t, &format!("{} MiB received", got / MIB));

    reset_peak();
    let t = Instant::now();
    let puts = (0..4).map(|i| {
        let req = api.req(reqwest::Method::PUT, &files(&format!("up{i}.bin"))).body(generated(250 * MIB));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses: Vec<_> = futures_util::future::join_all(puts).await.into_iter().map(|r| r.unwrap_or(0)).collect();
    report("REST 4 concurrent PUTs of 250 MiB", t, &format!("statuses {statuses:?}"));

    // The same through the core API, in this process.
    let sb = dagger_sandbox::Sandbox::create(
        dagger_sandbox::SandboxConfig::new()
            .backend(dagger_sandbox::BackendChoice::Docker)
            .image(IMAGE)
            .fallback(false),
    )
    .await?;
    sb.exec("truncate -s 64G huge", dagger_sandbox::ExecOptions::new()).await?;
    reset_peak();
    let t = Instant::now();
    let r = sb.read_file("huge").await;
    report("core read_file of a 64 GB sparse file", t, &format!("{:?}", r.map(|b| b.len()).map_err(|e| e.code())));
    reset_peak();
    let t = Instant::now();
    let r = sb.exec(PRINT_200MB, dagger_sandbox::ExecOptions::new()).await?;
    report("core exec printing 200 MB", t, &format!("{} bytes kept, truncated {}", r.stdout.len(), r.truncated));
    sb.close().await?;

    let (status, _) = api.json(reqwest::Method::DELETE, &format!("/api/sandbox/{id}"), json!({})).await;
    anyhow::ensure!(status < 300, "delete: {status}");
    server.shutdown().await;

    bridge_exec()?;
    Ok(())
}

/// The bridge binary printing 200 MB through `sandbox/exec`, peak from its own `/proc` status.
fn bridge_exec() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let bridge: PathBuf =
        exe.parent().and_then(|d| d.parent()).map(|d| d.join("dagger-sandbox-bridge")).unwrap_or_default();
    if !bridge.is_file() {
        println!("bridge: {} not built (cargo build -p dagger-sandbox-bridge); skipped", bridge.display());
        return Ok(());
    }
    let mut child = Command::new(&bridge).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let pid = child.id().to_string();
    let mut stdin = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut call = |id: u64, method: &str, params: Value| -> anyhow::Result<Value> {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(stdin, "{msg}")?;
        stdin.flush()?;
        loop {
            let line = lines.next().ok_or_else(|| anyhow::anyhow!("the bridge closed its output"))??;
            let v: Value = serde_json::from_str(&line)?;
            if v["id"] == json!(id) {
                return Ok(v);
            }
        }
    };
    call(1, "initialize", json!({"protocolVersion": "1"}))?;
    let baseline = status_kib(&pid, "VmHWM:");
    let r = call(2, "sandbox/create", json!({"backend": "docker", "image": IMAGE, "fallback": false}))?;
    let sb = r["result"]["sandboxId"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    let r = call(3, "sandbox/exec", json!({"sandboxId": sb, "command": PRINT_200MB}))?;
    let kept = r["result"]["stdout"].as_str().map(str::len).unwrap_or(0);
    let peak = status_kib(&pid, "VmHWM:");
    println!(
        "{:<48} peak {:>6.1} MiB  (after start {:>6.1} MiB)  {:>6.2} s  {kept} bytes of stdout kept",
        "bridge exec printing 200 MB",
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0,
        t.elapsed().as_secs_f64()
    );
    call(4, "sandbox/close", json!({"sandboxId": sb}))?;
    drop(stdin);
    child.wait()?;
    Ok(())
}

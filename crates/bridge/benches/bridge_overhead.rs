//! Bridge overhead: the same `readFile` on a local sandbox, as a direct Rust call and as a JSON-RPC
//! round trip through the `dagger-sandbox-bridge` binary, median and p99, plus round trips per
//! second sequentially and with 16 requests in flight.
//!
//! Run: `cargo bench -p dagger-sandbox-bridge --bench bridge_overhead` (`BENCH_N`, default 3000).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, Sandbox, SandboxConfig};
use serde_json::{json, Value};

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);

    // Direct Rust calls.
    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await.unwrap();
    sb.write_file("small.txt", "hello bridge\n").await.unwrap();
    for _ in 0..200 {
        sb.read_file("small.txt").await.unwrap();
    }
    let mut direct = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sb.read_file("small.txt").await.unwrap();
        direct.push(t.elapsed());
    }
    sb.close().await.unwrap();

    // The same call through the bridge.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dagger-sandbox-bridge"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        stdin.write_all(format!("{msg}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    call(1, "initialize", json!({"protocolVersion": "1"}));
    let id = call(2, "sandbox/create", json!({"backend": "local"}))["result"]["sandboxId"].clone();
    call(3, "sandbox/writeFile", json!({"sandboxId": id, "path": "small.txt", "content": "hello bridge\n"}));
    let read = json!({"sandboxId": id, "path": "small.txt"});
    for i in 0..200 {
        call(10 + i, "sandbox/readFile", read.clone());
    }
    let mut bridged = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        let r = call(1000 + i, "sandbox/readFile", read.clone());
        bridged.push(t.elapsed());
        assert_eq!(r["result"]["content"], "hello bridge\n");
    }
    let sequential_rps = n as f64 / started.elapsed().as_secs_f64();

    // Pipelined: keep 16 requests in flight.
    let total = n as u64;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut buf = String::new();
    let msg = |i: u64| {
        format!("{}\n", json!({"jsonrpc": "2.0", "id": 100_000 + i, "method": "sandbox/readFile", "params": read}))
    };
    // `call` is not used past here, so stdin and stdout are free again.
    let mut stdin = stdin;
    while got < total {
        while sent < total && sent - got < 16 {
            stdin.write_all(msg(sent).as_bytes()).unwrap();
            sent += 1;
        }
        stdin.flush().unwrap();
        buf.clear();
        stdout.read_line(&mut buf).unwrap();
        got += 1;
    }
    let pipelined_rps = total as f64 / started.elapsed().as_secs_f64();
    drop(stdin);
    child.wait().unwrap();

    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    let (b50, b99) = (pct(&mut bridged, 0.5), pct(&mut bridged, 0.99));
    println!("bridge overhead on sandbox/readFile (local backend, 13-byte file), n={n}, times in microseconds");
    println!("{:<28} {:>10} {:>10}", "", "p50", "p99");
    println!("{:<28} {:>10.1} {:>10.1}", "direct Rust call", d50, d99);
    println!("{:<28} {:>10.1} {:>10.1}", "through the bridge", b50, b99);
    println!("{:<28} {:>10.1} {:>10.1}", "overhead per call", b50 - d50, b99 - d99);
    println!("round trips per second: {sequential_rps:.0} sequential, {pipelined_rps:.0} with 16 in flight");
}

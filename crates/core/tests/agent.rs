//! The in-sandbox agent on Docker: the fast path serves commands and files, and an agent that is
//! missing, silent, speaks garbage or dies gives `ENGINE_ERROR` for what was in flight and the
//! Engine API path for everything after, never a hang. Hostile agents are shell scripts mounted
//! in the real one's place (`DAGGER_SANDBOX_AGENT`), run by the test image's busybox shell.
//!
//! The variable is process-wide, so every test here holds `ENV` while it creates sandboxes.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dagger_sandbox::{BackendChoice, ErrorCode, ExecOptions, Sandbox, SandboxConfig};

const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";
const NODE: &str = "dagger-sandbox-test/node:latest";
const VAR: &str = "DAGGER_SANDBOX_AGENT";

static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Docker sandbox, or `None` (with a SKIPPED line) where Docker or the test image is missing.
async fn docker_sandbox() -> Option<Sandbox> {
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).fallback(false).image(BUSYBOX);
    match Sandbox::create(cfg).await {
        Ok(sb) => Some(sb),
        Err(e) if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but: {e}")
        }
        Err(e) => {
            println!("SKIPPED: no Docker sandbox ({e}); run scripts/engine.sh");
            None
        }
    }
}

/// `sb` when its agent runs; `None` (with a SKIPPED line, the sandbox closed) otherwise.
async fn agent_sandbox(sb: Option<Sandbox>) -> Option<Sandbox> {
    let sb = sb?;
    if sb.agent_running().await {
        return Some(sb);
    }
    println!("SKIPPED: no agent binary (scripts/agent-build.sh)");
    sb.close().await.unwrap();
    None
}

/// A shell script standing in for the agent.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The hello frame of protocol 1 as `printf` octal escapes (so a script can say it).
fn hello_printf() -> String {
    let frame = dagger_sandbox_agent::encode_json(
        0,
        dagger_sandbox_agent::Kind::Hello,
        &dagger_sandbox_agent::Hello { version: dagger_sandbox_agent::PROTOCOL_VERSION, pid: 1, uid: 0, token: None },
    );
    frame.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// A sandbox whose agent is `agent` (a script), with the variable put back after.
async fn with_agent(agent: &std::path::Path) -> Option<Sandbox> {
    std::env::set_var(VAR, agent);
    let sb = docker_sandbox().await;
    std::env::remove_var(VAR);
    sb
}

/// The Engine API path still serves a sandbox whose agent failed: commands and files work.
async fn engine_api_serves(sb: &Sandbox) {
    let r = sb.exec("echo via-api", ExecOptions::new()).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "via-api\n"));
    sb.write_file("/tmp/f", b"\x00bytes\xff").await.unwrap();
    assert_eq!(sb.read_file("/tmp/f").await.unwrap(), b"\x00bytes\xff");
}

#[tokio::test]
async fn commands_and_files_go_through_the_agent() {
    let _env = ENV.lock().await;
    let Some(sb) = docker_sandbox().await else { return };
    if !sb.agent_running().await {
        assert_ne!(
            std::env::var("DAGGER_SANDBOX_REQUIRE_AGENT").as_deref(),
            Ok("1"),
            "DAGGER_SANDBOX_REQUIRE_AGENT=1 but the agent does not run (scripts/agent-build.sh builds it)"
        );
        println!("SKIPPED: no agent binary (scripts/agent-build.sh)");
        sb.close().await.unwrap();
        return;
    }
    // The command's parent is the agent, not the engine's exec: it did run through it.
    let r = sb.exec("cat /proc/$PPID/cmdline | tr '\\0' ' '", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), dagger_sandbox_agent::AGENT_PATH, "{r:?}");
    // It speaks over the host's Unix socket (the socket transport), not the engine's stdio copy.
    let r = sb.exec("ls -l /proc/$PPID/fd | grep -c socket:", ExecOptions::new()).await.unwrap();
    assert_ne!(r.stdout.trim(), "0", "{r:?}");
    let opts = ExecOptions::new().env("GREETING", "hi there").cwd("/tmp").stdin(b"in\x00put".to_vec());
    let r = sb.exec("echo \"$GREETING\" $(pwd); wc -c; echo err >&2; exit 3", opts).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str(), r.stderr.as_str()), (3, "hi there /tmp\n6\n", "err\n"));
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    sb.write_file_with_mode("/work/bin/tool", &bytes, 0o751).await.unwrap();
    assert_eq!(sb.read_file("/work/bin/tool").await.unwrap(), bytes);
    assert_eq!(sb.exec("stat -c %a /work/bin/tool", ExecOptions::new()).await.unwrap().stdout, "751\n");
    let names: Vec<String> = sb.list_directory("/work/bin").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["tool"]);
    sb.delete_file("/work").await.unwrap();
    assert!(!sb.exists("/work").await.unwrap());
    sb.close().await.unwrap();
}

#[tokio::test]
async fn an_agent_that_speaks_garbage_is_not_used() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = script(&dir, "garbage", "printf 'HTTP/1.1 200 OK\\r\\n\\r\\nhello'; sleep 600");
    let Some(sb) = with_agent(&agent).await else { return };
    assert!(!sb.agent_running().await, "a garbage hello was taken");
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn an_agent_that_exits_at_once_is_not_used() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = script(&dir, "exits", "exit 1");
    let Some(sb) = with_agent(&agent).await else { return };
    assert!(!sb.agent_running().await);
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_silent_agent_is_given_up_after_the_hello_timeout_not_waited_for() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = script(&dir, "silent", "exec sleep 600");
    let Some(sb) = with_agent(&agent).await else { return };
    let started = Instant::now();
    assert!(!sb.agent_running().await);
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?} for a silent agent", started.elapsed());
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn garbage_after_the_hello_fails_the_call_in_flight_then_falls_back() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A good hello, then, a little later, a frame length far past the bound.
    let body = format!("printf '{}'; sleep 3; printf '\\377\\377\\377\\377garbage'; sleep 600", hello_printf());
    let agent = script(&dir, "turns", &body);
    let Some(sb) = with_agent(&agent).await else { return };
    assert!(sb.agent_running().await, "the scripted hello was refused");
    let started = Instant::now();
    let e = sb.exec("sleep 30", ExecOptions::new()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineError, "{e}");
    assert!(e.to_string().contains("frame length"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(!sb.agent_running().await);
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_window_overrun_ends_the_connection() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Hello, then for request 1 (the first call) a start and 64 stdout frames nobody acknowledged:
    // far past the window.
    let started = dagger_sandbox_agent::encode_json(
        1,
        dagger_sandbox_agent::Kind::Reply,
        &dagger_sandbox_agent::Reply::Started { pid: 1 },
    );
    let octal = |bytes: &[u8]| bytes.iter().map(|b| format!("\\{b:03o}")).collect::<String>();
    let frame = octal(&dagger_sandbox_agent::encode(1, dagger_sandbox_agent::Kind::Stdout, b"x"));
    let started = octal(&started);
    let host_hello = dagger_sandbox_agent::encode_json(
        0,
        dagger_sandbox_agent::Kind::Hello,
        &dagger_sandbox_agent::Hello { version: dagger_sandbox_agent::PROTOCOL_VERSION, pid: 0, uid: 0, token: None },
    );
    // It waits for the host's hello and the first byte of its first request before flooding.
    let body = format!(
        "printf '{}'; head -c {} >/dev/null; printf '{started}'; i=0; while [ $i -lt 64 ]; do printf '{frame}'; i=$((i+1)); done; sleep 600",
        hello_printf(),
        host_hello.len() + 1
    );
    let agent = script(&dir, "floods", &body);
    let Some(sb) = with_agent(&agent).await else { return };
    assert!(sb.agent_running().await, "the scripted hello was refused");
    // A stream receiver that never reads: the host consumes nothing, so the frames pile up
    // against the window, whatever the timing.
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let opts = ExecOptions::new().output(tx).timeout(Duration::from_secs(5));
    let r = sb.exec("true", opts).await;
    assert!(r.is_err(), "{r:?}");
    assert!(!sb.agent_running().await, "an agent that overran the window is still used");
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_killed_agent_fails_its_command_then_the_engine_api_serves() {
    let _env = ENV.lock().await;
    let Some(sb) = agent_sandbox(docker_sandbox().await).await else { return };
    // The command kills its own parent, the agent.
    let e = sb.exec("kill -9 $PPID; sleep 30", ExecOptions::new()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineError, "{e}");
    assert!(!sb.agent_running().await);
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn off_turns_the_agent_off() {
    let _env = ENV.lock().await;
    std::env::set_var(VAR, "off");
    let sb = docker_sandbox().await;
    std::env::remove_var(VAR);
    let Some(sb) = sb else { return };
    assert!(!sb.agent_running().await);
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hold_the_command() {
    let _env = ENV.lock().await;
    let Some(sb) = docker_sandbox().await else { return };
    // As an Engine API exec: the output closes about 2 s after the command exits, even while a
    // process it left in the background keeps the pipes open (a service's `(httpd &)` relies on it).
    let started = Instant::now();
    let r = sb.exec("(sleep 60 &); echo out; exit 5", ExecOptions::new()).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (5, "out\n"));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_socket_peer_without_the_agents_token_is_refused() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Node (in the node test image) can reach the host's Unix socket; it says a well-formed hello
    // with a guessed token, as code in the sandbox impersonating the agent would.
    let js = "const s=require('net').connect(process.env.DAGGER_SANDBOX_AGENT_SOCKET);\
        s.on('connect',()=>{const j=Buffer.from(JSON.stringify({version:1,pid:1,uid:0,token:'guess'}));\
        const h=Buffer.alloc(9);h.writeUInt32BE(j.length+5,0);h.writeUInt32BE(0,4);h[8]=1;\
        s.write(Buffer.concat([h,j]));});setTimeout(()=>{},600000);";
    let agent = script(&dir, "impostor", &format!("exec node -e \"{js}\""));
    std::env::set_var(VAR, &agent);
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).fallback(false).image(NODE);
    let sb = Sandbox::create(cfg).await;
    std::env::remove_var(VAR);
    let Ok(sb) = sb else {
        println!("SKIPPED: no Docker sandbox of {NODE} (run scripts/engine.sh)");
        return;
    };
    assert!(!sb.agent_running().await, "a peer without the token was taken for the agent");
    engine_api_serves(&sb).await;
    sb.close().await.unwrap();
}

#[tokio::test]
async fn the_process_limit_fails_commands_not_the_agent() {
    let _env = ENV.lock().await;
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).fallback(false).image(BUSYBOX).pids_limit(24);
    let Some(sb) = agent_sandbox(Sandbox::create(cfg).await.ok()).await else { return };
    // Far more commands at once than the limit has processes (each also costs the agent threads).
    let runs = (0..40).map(|_| sb.exec("sleep 1", ExecOptions::new()));
    let results = futures_util::future::join_all(runs).await;
    let refused = results.iter().filter(|r| r.is_err()).count();
    assert!(refused > 0, "the limit of 24 processes held 40 sleeping commands");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.code(), ErrorCode::EngineError, "{e}");
    }
    assert!(sb.agent_running().await, "the agent died at the process limit");
    let r = sb.exec("echo still here", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "still here\n");
    sb.close().await.unwrap();
}

#[tokio::test]
async fn a_sandbox_taken_back_keeps_its_agent_and_its_engine_api() {
    let _env = ENV.lock().await;
    let Some(sb) = agent_sandbox(docker_sandbox().await).await else { return };
    sb.write_file("/workspace/kept.txt", "kept").await.unwrap();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    // A daemon that shuts down lets go of its handles without closing them.
    sb.detach();
    drop(sb);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cfg = SandboxConfig::new().backend(BackendChoice::Docker).fallback(false).image(BUSYBOX);
    let back = Sandbox::reattach(cfg, &id, &resource).await.unwrap();
    assert!(back.agent_running().await, "the agent of a sandbox taken back did not start");
    // The engine's archive calls (an export always uses them) still work: the mounts' host
    // sources outlived the handle that made them.
    let out = tempfile::tempdir().unwrap();
    back.export_directory("/workspace", out.path()).await.unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("kept.txt")).unwrap(), "kept");
    back.close().await.unwrap();
}

#[tokio::test]
async fn a_resumed_sandbox_keeps_the_agent_and_a_snapshot_waits_for_its_start() {
    let _env = ENV.lock().await;
    let Some(sb) = agent_sandbox(docker_sandbox().await).await else { return };
    sb.write_file("kept.txt", "k").await.unwrap();
    sb.stop().await.unwrap();
    sb.resume().await.unwrap();
    // Stopping the container ended its agent; the resumed sandbox gets a new one, not the slow path.
    assert!(sb.agent_running().await, "the resumed sandbox fell back to the Engine API");
    assert_eq!(sb.exec("cat kept.txt", ExecOptions::new()).await.unwrap().stdout, "k");
    sb.close().await.unwrap();

    // A snapshot right after create, while the agent starts in the background: the commit pauses
    // the container, and an exec half-started then froze the engine (seen with fork).
    let Some(fresh) = docker_sandbox().await else { return };
    let snap = tokio::time::timeout(Duration::from_secs(60), fresh.snapshot(None))
        .await
        .expect("a snapshot taken while the agent starts hung")
        .unwrap();
    dagger_sandbox::Snapshot::remove(&snap.id).await.unwrap();
    fresh.close().await.unwrap();
}

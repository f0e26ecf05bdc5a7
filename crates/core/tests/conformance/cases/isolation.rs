//! Conformance cases for isolation: network, resource limits, real images, and the local
//! backend's guarantees about the host.

use std::time::Duration;

use dagger_sandbox::{ErrorCode, ExecOptions};

use crate::harness::{expect_code, Harness};

pub(super) async fn network_is_off_by_default(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("ls /sys/class/net", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.split_whitespace().collect::<Vec<_>>(), ["lo"], "{r:?}");
    let on = h.create_with(h.config().network(true)).await;
    let r = on.exec("ls /sys/class/net", ExecOptions::new()).await.unwrap();
    assert!(r.stdout.contains("eth0"), "network: true gives an interface: {r:?}");
    sb.close().await.unwrap();
    on.close().await.unwrap();
}

pub(super) async fn memory_and_pids_limits_are_applied(h: Harness) {
    let sb = h.create_with(h.config().memory_mb(256).pids_limit(64)).await;
    let r = sb
        .exec("cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes", ExecOptions::new())
        .await
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["64", &(256u64 * 1024 * 1024).to_string()], "{r:?}");
    sb.close().await.unwrap();
}

pub(super) async fn node_project_runs_its_tests(h: Harness) {
    let image = h.node_image.clone().expect("scoped to backends with a Node image");
    let sb = h.create_with(h.config().image(image)).await;
    sb.write_files([
        ("package.json", r#"{"name":"demo","version":"1.0.0","type":"module"}"#),
        ("sum.js", "export const sum = (a, b) => a + b;\n"),
        ("sum.test.js", "import test from 'node:test';\nimport assert from 'node:assert';\nimport { sum } from './sum.js';\ntest('adds', () => assert.strictEqual(sum(2, 3), 5));\n"),
        ("fail.test.js", "import test from 'node:test';\nimport assert from 'node:assert';\ntest('fails', () => assert.strictEqual(1, 2));\n"),
    ])
    .await
    .unwrap();
    let ok = sb.exec("node --test sum.test.js", ExecOptions::new()).await.unwrap();
    assert_eq!(ok.exit_code, 0, "{ok:?}");
    assert!(ok.stdout.contains("pass 1"), "{ok:?}");
    let bad = sb.exec("node --test fail.test.js", ExecOptions::new()).await.unwrap();
    assert_eq!(bad.exit_code, 1, "a failing test suite is a result: {bad:?}");
    sb.close().await.unwrap();
}

pub(super) async fn symlinks_and_dot_dot_never_reach_outside_the_sandbox(h: Harness) {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target.txt");
    std::fs::write(&target, "original").unwrap();
    let sb = h.create().await;
    // Commands plant links that point out of the sandbox, absolute and relative.
    let cmd = format!(
        "ln -s {dir} out-dir && ln -s {file} out-file && ln -s ../../../../../../../../.. up",
        dir = outside.path().display(),
        file = target.display()
    );
    assert_eq!(sb.exec(&cmd, ExecOptions::new()).await.unwrap().exit_code, 0);
    expect_code(sb.write_file("out-dir/new.txt", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.read_file("out-dir/target.txt").await, ErrorCode::InvalidPath);
    expect_code(sb.read_file("out-file").await, ErrorCode::InvalidPath);
    expect_code(sb.list_directory("out-dir").await, ErrorCode::InvalidPath);
    expect_code(sb.exec("true", ExecOptions::new().cwd("out-dir")).await, ErrorCode::InvalidPath);
    expect_code(sb.write_file(&format!("up{}/x", outside.path().display()), "x").await, ErrorCode::InvalidPath);
    // Writing to the link's own path replaces the link; it never writes through it.
    sb.write_file("out-file", "replaced").await.unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
    assert_eq!(sb.read_file("out-file").await.unwrap(), b"replaced");
    // `..` is resolved inside the sandbox: it stops at the sandbox root.
    sb.write_file("../../../../../escape.txt", "inside").await.unwrap();
    assert_eq!(sb.read_file("/escape.txt").await.unwrap(), b"inside");
    assert!(std::path::Path::new(&sb.resource_id()).join("escape.txt").exists());
    // Deleting through a link removes the link only.
    sb.delete_file("out-dir").await.unwrap();
    assert!(target.exists());
    assert!(!outside.path().join("new.txt").exists());
    sb.close().await.unwrap();
}

pub(super) async fn close_stops_processes_a_command_left_running(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("nohup sleep 600 >/dev/null 2>&1 & echo $!", ExecOptions::new()).await.unwrap();
    let pid: i32 = r.stdout.trim().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the background process started");
    sb.close().await.unwrap();
    let mut alive = true;
    for _ in 0..50 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        alive = !state.is_empty() && !state.contains("State:\tZ");
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive, "a process of the closed sandbox is still running");
}

pub(super) async fn secret_values_are_scrubbed_from_output(h: Harness) {
    // Variables matching secretPatterns go in as Dagger secrets; the engine replaces their values
    // with *** in everything the command prints (docs/DAGGER.md, secrets).
    let sb = h.create_with(h.config().env("GITHUB_TOKEN", "s3cr3t-value-42")).await;
    let r = sb
        .exec(
            "echo \"token=$GITHUB_TOKEN\"; echo \"$GITHUB_TOKEN\" >&2; printf %s \"$GITHUB_TOKEN\" > t",
            ExecOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.stdout, "token=***\n", "{r:?}");
    assert_eq!(r.stderr, "***\n", "{r:?}");
    // Only output is scrubbed: the command saw the real value, and files keep it.
    assert_eq!(sb.read_to_string("t").await.unwrap(), "s3cr3t-value-42");
    // A transformed value is not recognised: scrubbing is a guard against accidents, not a wall.
    let r = sb.exec("echo \"$GITHUB_TOKEN\" | rev", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "24-eulav-t3rc3s\n");
    // A per-call secret is scrubbed the same way.
    let r = sb.exec("echo $API_SECRET", ExecOptions::new().env("API_SECRET", "other-secret-value")).await.unwrap();
    assert_eq!(r.stdout, "***\n");
    sb.close().await.unwrap();
}

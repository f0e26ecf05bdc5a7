//! Conformance cases for stop and resume: a stopped sandbox runs nothing but keeps its files, env
//! and workdir; calls on it are `STOPPED`; it can be taken back stopped after its handle was lost.

use dagger_sandbox::{ErrorCode, ExecOptions, Sandbox};

use super::lifecycle::{leftovers, leftovers_of};
use crate::harness::{expect_code, Harness};

/// What `/proc/<pid>/cmdline` says of the pid in `file` (relative to the workdir), or `gone`.
const CMDLINE_OF_PID: &str =
    "p=$(cat bg.pid); if [ -r /proc/$p/cmdline ]; then tr '\\0' ' ' < /proc/$p/cmdline; else echo gone; fi";

pub(super) async fn stop_ends_processes_and_resume_brings_back_files_env_and_workdir(h: Harness) {
    let sb = h.create().await;
    sb.set_workdir("app").await.unwrap();
    sb.write_file("kept.txt", "before the stop").await.unwrap();
    sb.with_env("KEPT_VAR", "still-here").unwrap();
    // A background process that would run for 1000 s: a stop must end it.
    let r = sb.exec("sleep 1000 > /dev/null 2>&1 & echo $! > bg.pid", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    let before = sb.exec(CMDLINE_OF_PID, ExecOptions::new()).await.unwrap();
    assert!(before.stdout.contains("sleep 1000"), "the background process runs before the stop: {before:?}");

    sb.stop().await.unwrap();
    assert!(sb.is_stopped());
    sb.stop().await.unwrap(); // idempotent
    sb.resume().await.unwrap();
    assert!(!sb.is_stopped());
    sb.resume().await.unwrap(); // idempotent

    assert_eq!(sb.workdir(), "/workspace/app");
    assert_eq!(sb.read_file("kept.txt").await.unwrap(), b"before the stop");
    let r = sb.exec("echo $KEPT_VAR; pwd; cat kept.txt", ExecOptions::new()).await.unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert_eq!((lines[0], lines[2]), ("still-here", "before the stop"), "{r:?}");
    // On local the shell sees the host path of the sandbox's workdir.
    assert!(lines[1].ends_with("/workspace/app"), "{r:?}");
    let after = sb.exec(CMDLINE_OF_PID, ExecOptions::new()).await.unwrap();
    assert!(!after.stdout.contains("sleep 1000"), "the stop ended the background process: {after:?}");
    sb.write_file("after.txt", "x").await.unwrap();
    sb.close().await.unwrap();
    assert_eq!(leftovers(&h, &sb).await, Vec::<String>::new());
}

pub(super) async fn calls_on_a_stopped_sandbox_are_stopped_and_close_still_frees_it(h: Harness) {
    let sb = h.create().await;
    sb.write_file("f.txt", "f").await.unwrap();
    sb.stop().await.unwrap();
    let e = expect_code(sb.exec("true", ExecOptions::new()).await, ErrorCode::Stopped);
    assert!(e.to_string().contains(sb.id()) && e.to_string().contains("resume"), "{e}");
    expect_code(sb.write_file("g.txt", "g").await, ErrorCode::Stopped);
    expect_code(sb.read_file("f.txt").await, ErrorCode::Stopped);
    expect_code(sb.list_directory(".").await, ErrorCode::Stopped);
    expect_code(sb.set_workdir("elsewhere").await, ErrorCode::Stopped);
    expect_code(sb.fork().await, ErrorCode::Stopped);
    // The env is handle state: setting it while stopped is kept for after the resume.
    sb.with_env("SET_WHILE_STOPPED", "1").unwrap();
    // Nothing the refused calls asked for happened.
    sb.resume().await.unwrap();
    assert!(!sb.exists("g.txt").await.unwrap());
    assert_eq!(sb.exec("echo $SET_WHILE_STOPPED", ExecOptions::new()).await.unwrap().stdout, "1\n");
    // A stopped sandbox is closed (its resources freed) like a running one.
    sb.stop().await.unwrap();
    sb.close().await.unwrap();
    expect_code(sb.resume().await, ErrorCode::Closed);
    expect_code(sb.stop().await, ErrorCode::Closed);
    assert_eq!(leftovers(&h, &sb).await, Vec::<String>::new());
}

pub(super) async fn a_stopped_sandbox_whose_handle_was_lost_is_taken_back_stopped(h: Harness) {
    let cfg = h.config().env("CREATED_WITH", "config-value");
    let sb = h.create_with(cfg.clone()).await;
    sb.write_file("/workspace/kept.txt", "kept").await.unwrap();
    sb.stop().await.unwrap();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    sb.detach();
    drop(sb);
    // A plain reattach wants a running sandbox; a stopped one is taken back stopped.
    if h.is_container() {
        expect_code(Sandbox::reattach(cfg.clone(), &id, &resource).await, ErrorCode::NotFound);
    }
    let back = Sandbox::reattach_stopped(cfg.clone(), &id, &resource).await.unwrap();
    assert!(back.is_stopped());
    expect_code(back.exec("true", ExecOptions::new()).await, ErrorCode::Stopped);
    back.resume().await.unwrap();
    assert_eq!(back.read_file("/workspace/kept.txt").await.unwrap(), b"kept");
    let r = back.exec("echo $CREATED_WITH", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "config-value\n");
    back.close().await.unwrap();
    assert_eq!(leftovers_of(&h, &id, &resource).await, Vec::<String>::new());
}

//! Conformance cases for commands that try to outlive their call: a call dropped by its caller,
//! and a command that leaves its process group and drops its environment (`setsid env -i`; docker
//! only: on local such a process still escapes, docs/configuration.md's backend table).

use std::time::Duration;

use dagger_sandbox::{ErrorCode, ExecOptions};

use crate::harness::{expect_code, Harness};

/// How many processes of the sandbox run `sleep <secs>` now, seen from inside it (on local, the
/// host's processes). The pattern is written so that the counting command does not match itself.
async fn sleeping(sb: &dagger_sandbox::Sandbox, secs: u32) -> usize {
    let (head, last) = (secs / 10, secs % 10);
    let cmd = format!(
        "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' < $f 2>/dev/null; echo; done | grep -c '^sleep {head}[{last}] '"
    );
    let r = sb.exec(&cmd, ExecOptions::new()).await.unwrap();
    r.stdout.trim().parse().unwrap_or_else(|_| panic!("counting processes: {r:?}"))
}

/// Waits up to five seconds for no `sleep <secs>` to run; the count left.
async fn settle(sb: &dagger_sandbox::Sandbox, secs: u32) -> usize {
    let mut n = sleeping(sb, secs).await;
    for _ in 0..25 {
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        n = sleeping(sb, secs).await;
    }
    n
}

pub(super) async fn a_dropped_call_kills_its_command(h: Harness) {
    let sb = h.create().await;
    // A caller that gives up (a REST client that went away, a timeout around the call) drops the
    // future; the command has no timeout of its own that would ever stop it.
    let call = sb.exec("sleep 1001; echo done", ExecOptions::new().timeout(Duration::from_secs(3600)));
    assert!(tokio::time::timeout(Duration::from_millis(800), call).await.is_err(), "the command ran 1001 s");
    assert_eq!(settle(&sb, 1001).await, 0, "the dropped command kept running");
    sb.close().await.unwrap();
}

pub(super) async fn a_command_that_escapes_its_group_and_env_dies_at_its_timeout(h: Harness) {
    let sb = h.create().await;
    // It leaves the process group, drops every variable (the marker a kill could look for) and
    // is reparented away from the command, whose shell then waits on.
    let cmd = "(setsid env -i sleep 1002 >/dev/null 2>&1 </dev/null &); sleep 30";
    expect_code(sb.exec(cmd, ExecOptions::new().timeout(Duration::from_millis(1500))).await, ErrorCode::Timeout);
    assert_eq!(settle(&sb, 1002).await, 0, "an escaped process survived the timeout");
    // A background process a command left running on purpose is not the next command's to kill.
    sb.exec("sleep 1005 >/dev/null 2>&1 &", ExecOptions::new()).await.unwrap();
    expect_code(sb.exec("sleep 30", ExecOptions::new().timeout(Duration::from_millis(800))).await, ErrorCode::Timeout);
    assert_eq!(sleeping(&sb, 1005).await, 1, "another command's background process was killed");
    sb.close().await.unwrap();
}

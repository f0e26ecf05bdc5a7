//! Conformance cases for commands that try to outlive their call: a call dropped by its caller,
//! and a command that leaves its process group and drops its environment (`setsid env -i`): on
//! docker and on local where the host lets the sandbox make cgroups (docs/configuration.md's
//! backend table says what remains best effort).

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

/// How many host processes run `sleep <secs>` (the engine shares this kernel in the tests).
fn sleeping_on_host(secs: u32) -> usize {
    let want = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten().filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes())).count()
        })
        .unwrap_or(0)
}

pub(super) async fn a_command_that_escapes_its_group_and_env_dies_at_its_timeout(h: Harness) {
    let sb = h.create().await;
    // Each backend's run has numbers of its own: both run at once and the host sees both.
    let n = if sb.backend() == dagger_sandbox::BackendKind::Local { 10 } else { 0 };
    if sb.backend() == dagger_sandbox::BackendKind::Local {
        // The local backend reaches such a process only through a cgroup of the sandbox's own.
        let home = std::path::Path::new(&sb.resource_id()).parent().map(|p| p.join(".dagger-sandbox-cgroup"));
        if !home.is_some_and(|f| f.exists()) {
            println!("SKIPPED local escape case: this host lets the sandbox make no cgroup (best effort, see docs)");
            sb.close().await.unwrap();
            return;
        }
    }
    // It leaves the process group, drops every variable (the marker a kill could look for) and
    // is reparented away from the command, whose shell then waits on.
    let cmd = &format!("(setsid env -i sleep {} >/dev/null 2>&1 </dev/null &); sleep 30", 1002 + n);
    expect_code(sb.exec(cmd, ExecOptions::new().timeout(Duration::from_millis(1500))).await, ErrorCode::Timeout);
    assert_eq!(settle(&sb, 1002 + n).await, 0, "an escaped process survived the timeout");
    // A background process a command left running on purpose is not the next command's to kill.
    sb.exec(&format!("sleep {} >/dev/null 2>&1 &", 1005 + n), ExecOptions::new()).await.unwrap();
    expect_code(sb.exec("sleep 30", ExecOptions::new().timeout(Duration::from_millis(800))).await, ErrorCode::Timeout);
    assert_eq!(sleeping(&sb, 1005 + n).await, 1, "another command's background process was killed");
    // What a command left running, escaped or not, ends with the sandbox.
    sb.exec(&format!("(setsid env -i sleep {} >/dev/null 2>&1 </dev/null &)", 1003 + n), ExecOptions::new())
        .await
        .unwrap();
    assert_eq!(sleeping(&sb, 1003 + n).await, 1);
    sb.close().await.unwrap();
    let mut left = sleeping_on_host(1003 + n);
    for _ in 0..25 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = sleeping_on_host(1003 + n);
    }
    assert_eq!(left + sleeping_on_host(1005 + n), 0, "processes a command left running outlived close");
}

//! The processes of the sandbox as the agent sees them in `/proc`: reaping what was reparented to
//! it, and killing one command with everything it started.

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::Ordering;

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::{Agent, Req};

/// One process as `/proc` shows it.
struct Proc {
    pid: i32,
    ppid: i32,
    pgid: i32,
    zombie: bool,
}

/// Every process in the sandbox's pid namespace.
fn processes() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut f = rest.split(' ');
            let state = f.next()?;
            let ppid = f.next()?.parse().ok()?;
            let pgid = f.next()?.parse().ok()?;
            Some(Proc { pid, ppid, pgid, zombie: state == "Z" })
        })
        .collect()
}

/// Reaps processes that were reparented to the agent and ended (not its own commands, which
/// their threads wait for).
pub(crate) fn reap_orphans(agent: &Agent) {
    let me = std::process::id() as i32;
    let children = agent.children.lock().unwrap_or_else(|p| p.into_inner());
    for p in processes() {
        if p.ppid == me && p.zombie && !children.contains(&p.pid) {
            let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Kills a command: its process group, every process still carrying its marker, and, when no
/// other command ran since it started, the processes that left its tree (reparented to the
/// agent, created after it: pids grow in a pid namespace), each with all its descendants.
pub(crate) fn kill_tree(agent: &Agent, req: &Req) {
    let pgid = req.pgid.load(Ordering::SeqCst);
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    let marker = req.marker.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if pgid <= 0 && marker.is_empty() {
        return; // not a command
    }
    let me = std::process::id() as i32;
    let alone =
        !req.shared.load(Ordering::SeqCst) && agent.started.load(Ordering::SeqCst) == req.seq.load(Ordering::SeqCst);
    let procs = processes();
    let children = agent.children.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut doomed: HashSet<i32> = procs
        .iter()
        .filter(|p| p.pid != me)
        .filter(|p| {
            (pgid > 0 && p.pgid == pgid)
                || (alone && pgid > 0 && p.ppid == me && p.pid > pgid && !children.contains(&p.pid))
                || (!marker.is_empty()
                    && fs::read(format!("/proc/{}/environ", p.pid))
                        .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())))
        })
        .map(|p| p.pid)
        .collect();
    // Their descendants too, whatever group or environment they chose.
    loop {
        let more: Vec<i32> =
            procs.iter().filter(|p| doomed.contains(&p.ppid) && !doomed.contains(&p.pid)).map(|p| p.pid).collect();
        if more.is_empty() {
            break;
        }
        doomed.extend(more);
    }
    for pid in doomed {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

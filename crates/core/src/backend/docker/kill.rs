//! Killing one exec in a docker sandbox. Docker has no endpoint to kill an exec and hanging up
//! does not stop it, so a second exec finds the command's processes and kills them: those that
//! carry the exec's marker variable, their descendants, and, when the sandbox can judge, the
//! processes that left the command's tree (`setsid env -i cmd &` drops the marker and is
//! reparented to the container's init).
//!
//! Judging uses creation order: pids in a container's pid namespace are handed out in increasing
//! order, so an orphan whose pid lies between the exec's own shell and the kill script was
//! created while the exec ran. It is the exec's when no other exec started in the meantime and
//! none ran when it started (`ExecBook`). The shell's pid in the container comes from the shell
//! itself while it runs, or, read once at start, from the host's `/proc` when the engine shares
//! this machine's kernel.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::describe;
use crate::error::{Error, Result};

/// The variable that marks every process of one exec, so a kill can find them all.
pub(super) const MARKER_VAR: &str = "DAGGER_SANDBOX_EXEC";

/// How long the kill script may take to say it runs before the kill goes on without judging.
const READY_WAIT: Duration = Duration::from_secs(10);

/// The execs of one sandbox, so a kill knows whether processes that left an exec's tree can only
/// be that exec's.
#[derive(Debug, Default)]
pub(crate) struct ExecBook {
    /// Execs started so far (a sequence number per exec).
    started: AtomicU64,
    /// Execs started and not yet dropped.
    live: AtomicUsize,
}

/// One exec's entry in its sandbox's [`ExecBook`]; leaves the book when dropped.
#[derive(Debug)]
pub(super) struct Entry {
    book: Arc<ExecBook>,
    seq: u64,
    /// Whether another exec was running when this one started.
    shared: bool,
    /// The pid of the exec's shell in the container, once known (-1 until then).
    root: Arc<AtomicI64>,
}

impl Entry {
    /// Records an exec that is about to start.
    pub(super) fn enter(book: &Arc<ExecBook>) -> Entry {
        let shared = book.live.fetch_add(1, Ordering::SeqCst) > 0;
        let seq = book.started.fetch_add(1, Ordering::SeqCst) + 1;
        Entry { book: book.clone(), seq, shared, root: Arc::new(AtomicI64::new(-1)) }
    }

    /// Records the pid of the exec's shell in the container.
    pub(super) fn set_root(&self, pid: i64) {
        self.root.store(pid, Ordering::SeqCst);
    }

    /// What a kill needs to judge orphans later; `None` when another exec ran when this one
    /// started (their orphans cannot be told apart).
    pub(super) fn judge(&self) -> Option<Judge> {
        (!self.shared).then(|| Judge { book: self.book.clone(), seq: self.seq, root: self.root.clone() })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.book.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An exec that ran alone when it started, as its kill sees it.
#[derive(Debug, Clone)]
pub(super) struct Judge {
    book: Arc<ExecBook>,
    seq: u64,
    root: Arc<AtomicI64>,
}

impl Judge {
    /// Whether no other exec has started since this one: then every process created in the
    /// container from its start until now is its own.
    fn alone(&self) -> bool {
        self.book.started.load(Ordering::SeqCst) == self.seq
    }
}

/// The pid in the container of the exec whose host pid is `host_pid`, when the engine shares
/// this kernel (the host's `/proc/<pid>/status` lists it last on its `NSpid` line) and that
/// process is still the exec's shell.
pub(super) fn container_pid(host_pid: i64, command: &str) -> Option<i64> {
    let dir = std::path::Path::new("/proc").join(host_pid.to_string());
    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
    let want = [b"/bin/sh\0-c\0".as_slice(), command.as_bytes(), b"\0"].concat();
    if cmdline != want {
        return None;
    }
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    nspid.split_whitespace().last()?.parse().ok()
}

/// The kill script. It says `ready`, reads the exec's shell pid (`-1`: unknown, look for it;
/// `-2`: do not judge orphans), then, in up to three rounds, stops every process that carries the
/// marker, every orphan (parent 0 or 1) created after the exec's shell and before the script when
/// judging, and every descendant of those; once no new one appears it kills them all. Stopping
/// first means no parent sees a child die and starts another. Pid 1 and the script's own
/// processes are never chosen.
fn script(marker: &str) -> String {
    format!(
        r#"me=$$
echo ready
read -r r || r=-2
case "$r" in ''|*[!0-9-]*) r=-2;; esac
all=' '
for round in 1 2 3; do
  tab=''
  for d in /proc/[0-9]*; do
    p=${{d#/proc/}}
    [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
    read -r s 2>/dev/null < "$d/stat" || continue
    s=${{s##*) }}
    set -- $s
    [ "$2" = "$me" ] && continue
    m=0
    tr '\000' '\n' 2>/dev/null < "$d/environ" | grep -qxF '{marker}' && m=1
    # The exec's own shell: marked and started by the engine (no parent in the container).
    [ "$r" = -1 ] && [ "$m" = 1 ] && [ "$2" = 0 ] && r=$p
    tab="$tab$p $2 $m
"
  done
  set_="$all"
  changed=1
  while [ "$changed" = 1 ]; do
    changed=0
    while read -r p pp sel; do
      [ -z "$p" ] && continue
      case "$set_" in *" $p "*) continue;; esac
      [ "$r" -gt 1 ] && [ "$r" -lt "$me" ] && [ "$pp" -le 1 ] && [ "$p" -gt "$r" ] && [ "$p" -lt "$me" ] && sel=1
      case "$set_" in *" $pp "*) sel=1;; esac
      if [ "$sel" = 1 ]; then set_="$set_$p "; changed=1; fi
    done <<EOF
$tab
EOF
  done
  [ "$set_" = "$all" ] && break
  new=${{set_#"$all"}}
  kill -STOP $new 2>/dev/null
  all="$set_"
done
[ "$all" != ' ' ] && kill -KILL $all 2>/dev/null
echo "after $r killed:$all"
"#
    )
}

/// Kills the exec marked `marker` (see the module doc); with `judge`, orphans created since the
/// exec began are taken as its own when no other exec started meanwhile.
pub(super) async fn kill_exec(
    docker: Docker,
    container: String,
    sandbox: String,
    marker: String,
    judge: Option<Judge>,
) -> Result<()> {
    let err = |e: bollard::errors::Error| Error::engine(&sandbox, "killing a command", describe(&e));
    let config = ExecConfig {
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), script(&marker)]),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = docker.create_exec(&container, config).await.map_err(err)?;
    let StartExecResults::Attached { mut output, mut input } = docker.start_exec(&exec.id, None).await.map_err(err)?
    else {
        return Err(Error::engine(&sandbox, "killing a command", "the engine detached an attached exec"));
    };
    // Once the script runs, an exec that starts after the `alone` check below gets a higher pid
    // than the script's, which bounds the judged range.
    let mut ready = Vec::new();
    let wait_ready = async {
        while !ready.contains(&b'\n') {
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => ready.extend_from_slice(&message),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(READY_WAIT, wait_ready).await;
    let root = match judge {
        Some(j) if ready.starts_with(b"ready") && j.alone() => j.root.load(Ordering::SeqCst),
        _ => -2,
    };
    let _ = input.write_all(format!("{root}\n").as_bytes()).await;
    let _ = input.shutdown().await;
    let mut report = Vec::new();
    while let Some(frame) = output.next().await {
        if let Ok(LogOutput::StdOut { message }) = frame {
            report.extend_from_slice(&message);
        }
    }
    tracing::debug!(sandbox, report = %String::from_utf8_lossy(&report).trim(), "kill exec done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_is_alone_only_without_others_at_its_start_or_since() {
        let book = Arc::new(ExecBook::default());
        let a = Entry::enter(&book);
        let judge_a = a.judge().expect("a started alone");
        assert!(judge_a.alone());
        let b = Entry::enter(&book);
        assert!(!judge_a.alone(), "b started after a");
        assert!(b.judge().is_none(), "a ran when b started");
        drop((a, b));
        let c = Entry::enter(&book);
        assert!(c.judge().is_some_and(|j| j.alone()), "the others are gone");
    }

    #[test]
    fn a_host_pid_maps_to_the_container_pid_only_for_the_exec_shell() {
        // This test process is no `/bin/sh -c` shell: no mapping.
        assert_eq!(container_pid(i64::from(std::process::id()), "true"), None);
        assert_eq!(container_pid(i64::MAX, "true"), None);
    }
}

//! Per-sandbox cgroups for the local backend: each command runs in a cgroup v2 of its own under
//! the sandbox's, so a kill reaches every process it started, also one that left its process group
//! and dropped its environment (`setsid env -i cmd &`), which no process-group or marker scan can
//! find. Used where the host lets this process make cgroups (root, or a delegated subtree);
//! elsewhere the process-group and marker kill of `exec.rs` remain, and docs/configuration.md says
//! what is then best effort.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file in a local sandbox's home that records its cgroup, so a daemon that takes the sandbox
/// back, or an orphan cleanup in another process, finds the same one.
pub(super) const CGROUP_FILE: &str = ".dagger-sandbox-cgroup";

/// The cgroup of one local sandbox; the cgroups of its commands live under it.
#[derive(Debug, Clone)]
pub(super) struct SandboxCgroup {
    dir: PathBuf,
}

impl SandboxCgroup {
    /// Makes the sandbox's cgroup under this process's own cgroup v2 and records it in `home`;
    /// `None` when cgroup v2 is not mounted or not writable here.
    pub(super) fn create(home: &Path, sandbox: &str) -> Option<Self> {
        let dir = own_cgroup()?.join(format!("dagger-sandbox-{sandbox}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(
                    sandbox,
                    "no cgroup for the local sandbox ({}: {e}); kills are best effort",
                    dir.display()
                );
                return None;
            }
        }
        if std::fs::write(home.join(CGROUP_FILE), dir.as_os_str().as_encoded_bytes()).is_err() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SandboxCgroup { dir })
    }

    /// The cgroup recorded in `home` by [`create`](Self::create), if it still exists.
    pub(super) fn find(home: &Path) -> Option<Self> {
        let recorded = std::fs::read_to_string(home.join(CGROUP_FILE)).ok()?;
        let dir = PathBuf::from(recorded.trim());
        // Only a directory of a cgroup filesystem named like ours is trusted: the file lives in a
        // directory the sandbox's commands can write to.
        let named = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dagger-sandbox-sbx-"));
        (named && dir.join("cgroup.procs").is_file() && on_cgroup2(&dir)).then_some(SandboxCgroup { dir })
    }

    /// A fresh cgroup for one command, or `None` if it cannot be made.
    pub(super) fn for_exec(&self, marker: &str) -> Option<ExecCgroup> {
        let dir = self.dir.join(format!("exec-{marker}"));
        std::fs::create_dir(&dir).ok()?;
        Some(ExecCgroup { dir })
    }

    /// Kills every process of the sandbox's commands (background ones included) and keeps its
    /// cgroup for later commands (a stopped sandbox).
    pub(super) fn kill(&self) {
        kill_all(&self.dir);
    }

    /// Kills every process of the sandbox's commands (background ones included) and removes its
    /// cgroups.
    pub(super) fn kill_and_remove(&self) {
        kill_all(&self.dir);
        let children: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect())
            .unwrap_or_default();
        for child in children {
            remove(&child);
        }
        remove(&self.dir);
    }
}

/// The cgroup of one command.
#[derive(Debug)]
pub(super) struct ExecCgroup {
    dir: PathBuf,
}

impl ExecCgroup {
    /// The `cgroup.procs` file the command's shell writes its own pid to before it runs anything,
    /// so every process it starts is born inside.
    pub(super) fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Kills every process in the command's cgroup.
    pub(super) fn kill(&self) {
        kill_all(&self.dir);
    }

    /// Removes the cgroup once the command ended, unless processes it left running on purpose are
    /// still in it (they are the sandbox's until it closes).
    pub(super) fn remove_if_empty(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// This process's own cgroup v2 directory: the unified hierarchy's mount point plus the path in
/// `/proc/self/cgroup`.
fn own_cgroup() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim().trim_start_matches('/').to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mounts.lines().find_map(|line| {
        // "id parent major:minor root mount-point options ... - fstype source super-options"
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    let dir = if path.is_empty() { mount } else { mount.join(path) };
    dir.join("cgroup.procs").is_file().then_some(dir)
}

/// Whether `dir` is on a cgroup2 filesystem.
fn on_cgroup2(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Kills every process in the cgroup at `dir` and its children: `cgroup.kill` where the kernel has
/// it (5.14+), else SIGKILL to each listed pid until none is left.
fn kill_all(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for _ in 0..20 {
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // Pids read from a cgroup this sandbox made: only its own commands are in it.
            if pid > 1 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// Removes a cgroup directory, waiting briefly for killed processes to leave it.
fn remove(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    tracing::debug!("cgroup {} could not be removed", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_cgroup_is_trusted_only_when_it_is_one_of_ours_on_cgroup2() {
        let home = tempfile::tempdir().unwrap();
        // A command of the sandbox can write the record: a path elsewhere must not be believed.
        std::fs::write(home.path().join(CGROUP_FILE), "/etc").unwrap();
        assert!(SandboxCgroup::find(home.path()).is_none());
        let fake = home.path().join("dagger-sandbox-sbx-000000000000");
        std::fs::create_dir(&fake).unwrap();
        std::fs::write(fake.join("cgroup.procs"), "1\n").unwrap();
        std::fs::write(home.path().join(CGROUP_FILE), fake.as_os_str().as_encoded_bytes()).unwrap();
        assert!(SandboxCgroup::find(home.path()).is_none(), "a plain directory is not a cgroup");
    }
}

//! The private snapshots directory on this host: one `<id>/` per local or Dagger snapshot, holding
//! `snapshot.json` (the record) and, for local snapshots, `root/` (the copy of the sandbox tree).
//! A snapshot is written under `.partial-<id>/` and renamed into place when complete, so a crash
//! half way never leaves something that lists as a snapshot; deletion renames it away first.

use std::io;
use std::path::{Path, PathBuf};

use super::{Record, Snapshot};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::owner::{owner_status, OwnerStatus};

/// The variable that moves the snapshots directory (tests, or a bigger disk).
pub const SNAPSHOT_DIR_ENV: &str = "DAGGER_SANDBOX_SNAPSHOT_DIR";

/// The record file in a snapshot's directory.
const RECORD_FILE: &str = "snapshot.json";
/// The file naming the process writing a partial snapshot.
const OWNER_FILE: &str = "owner";
const PARTIAL: &str = ".partial-";
const REMOVING: &str = ".removing-";

/// Where local and Dagger snapshots are kept: `$DAGGER_SANDBOX_SNAPSHOT_DIR`, else
/// `$XDG_DATA_HOME/dagger-sandbox/snapshots`, else `~/.local/share/dagger-sandbox/snapshots`, else
/// `dagger-sandbox-snapshots-<uid>` under the system temp directory. Durable on purpose (not
/// `$XDG_RUNTIME_DIR`, which a logout empties), and private like the local sandbox directory.
pub fn snapshots_dir() -> PathBuf {
    let set = |k: &str| std::env::var_os(k).filter(|d| !d.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(SNAPSHOT_DIR_ENV) {
        return dir;
    }
    if let Some(data) = set("XDG_DATA_HOME") {
        return data.join("dagger-sandbox").join("snapshots");
    }
    match set("HOME") {
        Some(home) => home.join(".local/share/dagger-sandbox/snapshots"),
        None => crate::private_dir::per_user(&std::env::temp_dir(), "dagger-sandbox-snapshots"),
    }
}

/// The snapshots directory, made private when missing and refused when it is not.
pub(crate) fn private_dir() -> Result<PathBuf> {
    let dir = snapshots_dir();
    crate::private_dir::ensure_private(&dir, "the snapshots directory")?;
    Ok(dir)
}

/// A snapshot being written; removed on drop unless [`Partial::commit`] moved it into place.
pub(crate) struct Partial {
    /// `.partial-<id>`: write the snapshot's files here.
    pub dir: PathBuf,
    /// Where it goes when complete.
    target: PathBuf,
    done: bool,
}

impl Partial {
    /// Starts snapshot `id`: its partial directory, with this process named as its writer.
    pub(crate) fn begin(id: &str) -> Result<Partial> {
        let parent = private_dir()?;
        let dir = parent.join(format!("{PARTIAL}{id}"));
        std::fs::create_dir(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let p = Partial { dir, target: parent.join(id), done: false };
        std::fs::write(p.dir.join(OWNER_FILE), crate::owner::owner_label())
            .map_err(|e| Error::io(format!("writing {}", p.dir.join(OWNER_FILE).display()), e))?;
        Ok(p)
    }

    /// Writes the record and moves the snapshot into place, where it lists.
    pub(crate) fn commit(mut self, record: &Record) -> Result<PathBuf> {
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::io("writing a snapshot record", e.into()))?;
        let file = self.dir.join(RECORD_FILE);
        write_private(&file, &text).map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        let _ = std::fs::remove_file(self.dir.join(OWNER_FILE));
        std::fs::rename(&self.dir, &self.target)
            .map_err(|e| Error::io(format!("moving the snapshot into {}", self.target.display()), e))?;
        self.done = true;
        Ok(self.target.clone())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    // No fsync: the copied tree is not synced either, and the rename keeps a crash from ever
    // showing a half-written snapshot; a power loss may lose a snapshot taken just before it.
    f.write_all(bytes)
}

/// The directory of snapshot `id` (which may not exist).
pub(crate) fn home(id: &str) -> PathBuf {
    snapshots_dir().join(id)
}

/// The record of snapshot `id`, `NOT_FOUND` when there is none.
pub(crate) fn read(id: &str) -> Result<Record> {
    if !super::is_id(id) {
        return Err(super::not_found(id));
    }
    let file = home(id).join(RECORD_FILE);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(super::not_found(id)),
        Err(e) => return Err(Error::io(format!("reading {}", file.display()), e)),
    };
    serde_json::from_slice(&text)
        .map_err(|e| Error::io(format!("reading {}", file.display()), io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// How a record shows where its data is.
pub(crate) fn engine_ref(record: &Record) -> String {
    match record.snap.backend {
        BackendKind::Local => home(&record.snap.id).join("root").display().to_string(),
        _ => "dagger".into(),
    }
}

/// Every local and Dagger snapshot recorded here; unreadable records are skipped with a warning.
pub(crate) async fn list() -> Result<Vec<Snapshot>> {
    tokio::task::spawn_blocking(|| {
        let Ok(rd) = std::fs::read_dir(snapshots_dir()) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !super::is_id(&name) {
                continue;
            }
            match read(&name) {
                Ok(r) => {
                    let at = engine_ref(&r);
                    out.push(r.into_snapshot(at));
                }
                Err(e) => tracing::warn!(snapshot = name, "skipping an unreadable snapshot record: {e}"),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::io("listing snapshots", io::Error::other(e)))?
}

/// Deletes snapshot `id`'s directory: renamed away first (so it stops listing at once), then removed.
pub(crate) async fn remove(id: &str) -> Result<()> {
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let from = home(&id);
        let to = snapshots_dir().join(format!("{REMOVING}{id}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(super::not_found(&id)),
            Err(e) => return Err(Error::io(format!("removing {}", from.display()), e)),
        }
        std::fs::remove_dir_all(&to).map_err(|e| Error::io(format!("removing {}", to.display()), e))
    })
    .await
    .map_err(|e| Error::io("removing a snapshot", io::Error::other(e)))?
}

/// Removes what crashed writers left: partial snapshots whose writing process is gone, and
/// deletions that were cut short. How many.
pub(crate) fn sweep_leftovers() -> usize {
    let Ok(rd) = std::fs::read_dir(snapshots_dir()) else { return 0 };
    let mut n = 0;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dead = if name.starts_with(REMOVING) {
            true
        } else if name.starts_with(PARTIAL) {
            let owner = std::fs::read_to_string(entry.path().join(OWNER_FILE)).unwrap_or_default();
            owner_status(owner.trim()) == OwnerStatus::Dead
        } else {
            false
        };
        if dead && std::fs::remove_dir_all(entry.path()).is_ok() {
            n += 1;
        }
    }
    n
}

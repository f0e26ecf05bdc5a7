//! Local snapshots: the sandbox tree copied (file to file, sparse files kept sparse) into
//! `<snapshots dir>/<id>/root`, and sandboxes made from one by copying it back into a fresh
//! sandbox directory. The copy is private (mode 0700 under the private snapshots directory).

use std::path::Path;
use std::sync::Arc;

use cap_std::fs::Dir;

use super::{copy, LocalEngine, LocalFs};
use crate::config::ResolvedConfig;
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::snapshot::records::Partial;
use crate::snapshot::{Record, Snapshot};

/// Makes the private directory `path` (mode 0700) and opens it.
fn private_root(path: &Path) -> Result<Dir> {
    let mut b = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

impl LocalFs {
    /// Copies the tree into a new snapshot and records it.
    pub(super) fn take_snapshot(&self, mut record: Record) -> Result<Snapshot> {
        let partial = Partial::begin(&record.snap.id)?;
        let copy = private_root(&partial.dir.join("root"))?;
        let bytes = copy::copy_tree(&self.root, &copy)
            .map_err(|e| self.map_err(e, "copying for a snapshot", &SandboxPath::root()))?;
        record.snap.size = Some(bytes);
        let home = partial.commit(&record)?;
        Ok(record.into_snapshot(home.join("root").display().to_string()))
    }
}

impl LocalEngine {
    /// A new sandbox `id` whose tree is a copy of the snapshot at `snapshot_root`.
    pub(crate) async fn create_from(cfg: &ResolvedConfig, id: &str, snapshot_root: &str) -> Result<Self> {
        let ports = cfg.ports.clone();
        let (cfg, id, from) = (cfg.clone(), id.to_string(), snapshot_root.to_string());
        let fs = tokio::task::spawn_blocking(move || {
            let src = Dir::open_ambient_dir(&from, cap_std::ambient_authority())
                .map_err(|e| Error::io(format!("opening the snapshot copy {from}"), e))?;
            let fs = LocalFs::make(&id, &cfg.owner)?;
            let filled = copy::copy_tree(&src, &fs.root)
                .map_err(|e| Error::io(format!("copying the snapshot {from} into sandbox {id}"), e))
                .and_then(|_| fs.create_dirs(&cfg.workdir));
            if let Err(e) = filled {
                let _ = std::fs::remove_dir_all(&fs.home);
                return Err(e);
            }
            Ok(fs)
        })
        .await
        .map_err(|e| Error::io("copying a snapshot", std::io::Error::other(e)))??;
        Ok(LocalEngine { fs: Arc::new(fs), ports })
    }
}

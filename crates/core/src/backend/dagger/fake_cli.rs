//! Test support: executable scripts that stand in for a `dagger` CLI (the real one cannot be
//! built where CI runs).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `script` as the executable `dir/name`.
pub(crate) fn exe(dir: &Path, name: &str, script: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

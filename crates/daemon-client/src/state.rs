//! The state directory shared by the daemon and the CLI: where the database, the bearer token and
//! the running daemon's address live, so a CLI finds (or starts) the daemon of its state dir.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable naming the state directory (the CLI's `--state-dir` overrides it).
pub const STATE_DIR_ENV: &str = "DAGGER_SANDBOX_STATE_DIR";

/// The default state directory: `$DAGGER_SANDBOX_STATE_DIR`, else `$XDG_STATE_HOME/dagger-sandbox`,
/// else `~/.local/state/dagger-sandbox`, else `dagger-sandbox-state-<uid>` under the system temp
/// dir (per user; `ensure_dir` refuses it unless it is private).
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("dagger-sandbox");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/dagger-sandbox"),
        None => dagger_sandbox::private_dir::per_user(&std::env::temp_dir(), "dagger-sandbox-state"),
    }
}

/// The SQLite database of sessions.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("sessions.db")
}

/// The bearer token file (mode 0600).
pub fn token_path(dir: &Path) -> PathBuf {
    dir.join("token")
}

/// Where a running daemon records its address.
pub fn daemon_info_path(dir: &Path) -> PathBuf {
    dir.join("daemon.json")
}

/// The log file of a daemon started in the background by the CLI.
pub fn daemon_log_path(dir: &Path) -> PathBuf {
    dir.join("daemon.log")
}

/// Creates the state directory (mode 0700) if it is missing. One under the system temp dir,
/// where other users can create names first, must be private: ours, mode 0700, no symlink.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.starts_with(std::env::temp_dir()) && dir != std::env::temp_dir() {
        return dagger_sandbox::private_dir::ensure_private_dir(dir);
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The token of this state dir, or `None` when no daemon ever started here.
pub fn read_token(dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(token_path(dir)) {
        Ok(t) => Ok(Some(t.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The token of this state dir, generated (32 random bytes, hex) and stored with mode 0600 on
/// first use. Created with `create_new`, so two daemons starting at once agree on one token.
pub fn load_or_create_token(dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    ensure_dir(dir)?;
    if let Some(t) = read_token(dir)?.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(token_path(dir)) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.sync_all()?;
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_token(dir)?.ok_or_else(|| std::io::Error::other("the token file vanished while it was being read"))
        }
        Err(e) => Err(e),
    }
}

/// What a running daemon says about itself in `daemon.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    /// The address it listens on, e.g. `127.0.0.1:7878`.
    pub addr: String,
    /// Its process id.
    pub pid: u32,
    /// When it started listening (RFC 3339).
    pub started_at: String,
}

/// The daemon info of this state dir, if a daemon wrote one (it may have died since: probe it).
pub fn read_daemon_info(dir: &Path) -> Option<DaemonInfo> {
    serde_json::from_slice(&std::fs::read(daemon_info_path(dir)).ok()?).ok()
}

/// Records the daemon info atomically (write a temp file, then rename), so readers never see half.
pub fn write_daemon_info(dir: &Path, info: &DaemonInfo) -> std::io::Result<()> {
    let tmp = dir.join(format!(".daemon.json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, daemon_info_path(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_state_dir_in_the_temp_dir_must_be_private() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("state");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_dir(&open).unwrap_err();
        assert!(e.to_string().contains("other users can write into it"), "{e}");
        let fresh = t.path().join("fresh");
        ensure_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        let home_less = default_state_dir();
        assert!(!home_less.ends_with("dagger-sandbox-state"), "never the shared name: {}", home_less.display());
    }

    #[test]
    fn the_token_is_made_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("nested/state");
        assert_eq!(read_token(&state).unwrap(), None);
        let t = load_or_create_token(&state).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(load_or_create_token(&state).unwrap(), t);
        let mode = std::fs::metadata(token_path(&state)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn daemon_info_round_trips_and_garbage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_daemon_info(dir.path()), None);
        let info = DaemonInfo { addr: "127.0.0.1:7878".into(), pid: 42, started_at: "2026-11-23T12:00:00Z".into() };
        write_daemon_info(dir.path(), &info).unwrap();
        assert_eq!(read_daemon_info(dir.path()), Some(info));
        std::fs::write(daemon_info_path(dir.path()), "{not json").unwrap();
        assert_eq!(read_daemon_info(dir.path()), None);
    }
}

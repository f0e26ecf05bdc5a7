//! Private per-user directories under shared places (`/tmp`): made with mode 0700 and checked
//! before use, so another local user cannot pre-create one, open it up, or swap in a symlink and
//! have our sandboxes (or our state) live in a tree they control.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `<base>/<name>-<uid>`: the per-user name of a directory under a shared base such as `/tmp`.
pub fn per_user(base: &Path, name: &str) -> PathBuf {
    base.join(format!("{name}-{}", nix::unistd::geteuid()))
}

/// Creates `dir` (mode 0700; its parents as needed) when missing, then checks it is private:
/// a real directory (not a symlink), owned by this user, that no group or other user can write
/// to (so nobody else can rename, replace or add entries in it).
/// Anything else is refused with an error that says what is wrong and how to fix it.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check_private_dir(dir)
}

/// [`ensure_private_dir`] with the API's errors: `INVALID_ARGUMENT` naming `what` when the
/// directory is not private, `IO_ERROR` when it cannot be made.
pub(crate) fn ensure_private(dir: &Path, what: &str) -> crate::Result<()> {
    ensure_private_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => crate::Error::InvalidArgument(format!("{what}: {e}")),
        _ => crate::Error::io(format!("creating {what} {}", dir.display()), e),
    })
}

/// Checks that `dir` is private (see [`ensure_private_dir`]) without creating it.
pub fn check_private_dir(dir: &Path) -> io::Result<()> {
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {}: {why}; it must be a directory of yours that only you can write \
                 to, such as mode 0700 (remove it, or point the setting at a private directory)",
                dir.display()
            ),
        ))
    };
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return refuse("it is a symlink (someone could point it anywhere)".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(format!("it belongs to uid {}, not to this user (uid {me})", meta.uid()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return refuse(format!("its mode is {mode:04o}: other users can write into it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_directory_is_made_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        ensure_private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        ensure_private_dir(&d).unwrap();
    }

    #[test]
    fn a_world_writable_precreated_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("shared");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ensure_private_dir(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("other users can write into it"), "{e}");
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("theirs");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = ensure_private_dir(&link).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: only root can make a directory owned by another user");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("foreign");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&d, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = ensure_private_dir(&d).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
    }

    #[test]
    fn per_user_names_carry_the_uid() {
        let p = per_user(Path::new("/tmp"), "dagger-sandbox");
        assert_eq!(p, PathBuf::from(format!("/tmp/dagger-sandbox-{}", nix::unistd::geteuid())));
    }
}

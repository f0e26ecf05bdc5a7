//! The roots policy: the only host paths tools may read or write are inside the `--root`
//! directories and the roots the client declares. Paths are resolved through symlinks before the
//! check, so a link inside a root cannot lead out of it.

use std::path::{Component, Path, PathBuf};

use crate::error::{ToolError, PATH_OUTSIDE_ROOTS};

/// Host directories a connection may touch, canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots {
    dirs: Vec<PathBuf>,
}

impl Roots {
    /// Roots from directories that must exist (the `--root` flags); a missing one is an error.
    pub fn from_dirs(dirs: &[PathBuf]) -> std::io::Result<Roots> {
        let mut out = Vec::new();
        for d in dirs {
            let c = std::fs::canonicalize(d)
                .map_err(|e| std::io::Error::new(e.kind(), format!("root {}: {e}", d.display())))?;
            if !c.is_dir() {
                return Err(std::io::Error::other(format!("root {} is not a directory", d.display())));
            }
            out.push(c);
        }
        Ok(Roots { dirs: out })
    }

    /// These roots plus the client's (`file://` URIs; others and ones that do not exist are skipped).
    pub fn with_client_uris<'a>(&self, uris: impl IntoIterator<Item = &'a str>) -> Roots {
        let mut dirs = self.dirs.clone();
        for uri in uris {
            let Some(path) = url::Url::parse(uri).ok().and_then(|u| u.to_file_path().ok()) else {
                tracing::warn!(uri, "ignoring a client root that is not a file:// URI");
                continue;
            };
            match std::fs::canonicalize(&path) {
                Ok(c) if c.is_dir() => dirs.push(c),
                _ => tracing::warn!(path = %path.display(), "ignoring a client root that is not a directory"),
            }
        }
        Roots { dirs }
    }

    /// The roots, canonical.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `path` resolved (it may not exist yet: its deepest existing ancestor is resolved and the rest
    /// appended), if it is inside a root; else `PATH_OUTSIDE_ROOTS`.
    pub fn check(&self, path: &str) -> Result<PathBuf, ToolError> {
        let p = Path::new(path);
        if path.is_empty() || !p.is_absolute() {
            return Err(ToolError::invalid(format!("host path {path:?} must be absolute")));
        }
        let resolved = resolve(p).map_err(|e| ToolError::invalid(format!("host path {path}: {e}")))?;
        if self.dirs.iter().any(|root| resolved.starts_with(root)) {
            return Ok(resolved);
        }
        let allowed = if self.dirs.is_empty() {
            "none: start the server with --root DIR or declare roots in the client".to_string()
        } else {
            self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        };
        Err(ToolError::new(
            PATH_OUTSIDE_ROOTS,
            format!("{path} is outside the roots this server may touch on the host (roots: {allowed})"),
        ))
    }

    /// Like [`Roots::check`] for a path that must exist.
    pub fn check_existing(&self, path: &str) -> Result<PathBuf, ToolError> {
        let p = self.check(path)?;
        if !p.exists() {
            return Err(ToolError::new("NOT_FOUND", format!("host path {path} does not exist")));
        }
        Ok(p)
    }
}

/// Resolves symlinks in the existing part of `p` and appends the rest, refusing `..` in the rest
/// (it could climb back out after the check).
fn resolve(p: &Path) -> std::io::Result<PathBuf> {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut c) => {
                for part in rest.iter().rev() {
                    c.push(part);
                }
                return Ok(c);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = match existing.components().next_back() {
                    Some(Component::Normal(n)) => n.to_os_string(),
                    _ => return Err(std::io::Error::other("`..` after a missing directory")),
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Roots {
        Roots::from_dirs(&[dir.to_path_buf()]).unwrap()
    }

    #[test]
    fn paths_inside_a_root_pass_and_outside_are_refused_with_the_code() {
        let d = tempfile::tempdir().unwrap();
        let r = roots(d.path());
        let inside = d.path().join("out/new/file.txt");
        assert!(r.check(inside.to_str().unwrap()).unwrap().starts_with(d.path().canonicalize().unwrap()));
        let err = r.check("/etc/passwd").unwrap_err();
        assert_eq!(err.code, PATH_OUTSIDE_ROOTS);
        assert!(err.message.contains(&d.path().canonicalize().unwrap().display().to_string()), "{err}");
    }

    #[test]
    fn dot_dot_and_symlinks_cannot_escape() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(d.path().join("secret")).unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("link")).unwrap();
        let r = roots(&root);
        let escape = format!("{}/../secret/x", root.display());
        assert_eq!(r.check(&escape).unwrap_err().code, PATH_OUTSIDE_ROOTS);
        let via_link = format!("{}/link/x", root.display());
        assert_eq!(r.check(&via_link).unwrap_err().code, PATH_OUTSIDE_ROOTS);
        let missing_then_up = format!("{}/nope/../../secret", root.display());
        assert_ne!(r.check(&missing_then_up).map(|_| ()).unwrap_err().code, "");
    }

    #[test]
    fn relative_paths_no_roots_and_missing_files_are_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(roots(d.path()).check("relative/x").unwrap_err().code, "INVALID_ARGUMENT");
        let err = Roots::default().check(d.path().to_str().unwrap()).unwrap_err();
        assert!(err.message.contains("--root"), "{err}");
        let missing = d.path().join("missing");
        assert_eq!(roots(d.path()).check_existing(missing.to_str().unwrap()).unwrap_err().code, "NOT_FOUND");
    }

    #[test]
    fn client_roots_are_file_uris_of_existing_directories() {
        let d = tempfile::tempdir().unwrap();
        let uri = url::Url::from_file_path(d.path()).unwrap().to_string();
        let r = Roots::default().with_client_uris([uri.as_str(), "https://example.com/", "file:///does/not/exist"]);
        assert_eq!(r.dirs(), [d.path().canonicalize().unwrap()]);
        assert!(Roots::from_dirs(&[d.path().join("missing")]).is_err());
    }
}

//! Sandbox paths: one normalised absolute form, so every backend and every restricted-path check
//! sees the same path for `a/../b`, `./b` and `/workspace/b`.

use std::fmt;

use crate::error::{Error, Result};

/// An absolute, lexically normalised path inside a sandbox (`/`, `/workspace/src/a.ts`).
///
/// `..` is resolved lexically and stops at `/`, as it does inside a container, so no `SandboxPath`
/// can name anything above the sandbox root. Symlinks are the backend's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxPath(String);

impl SandboxPath {
    /// The sandbox root, `/`.
    pub fn root() -> Self {
        SandboxPath("/".to_string())
    }

    /// Resolves `input` against `base` (used when `input` is relative) and normalises it.
    pub fn resolve(base: &SandboxPath, input: &str) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::invalid_path(input, "the path is empty"));
        }
        if input.contains('\0') {
            return Err(Error::invalid_path(input, "the path contains a NUL byte"));
        }
        let mut parts: Vec<&str> = Vec::new();
        let joined;
        let full = if input.starts_with('/') {
            input
        } else {
            joined = format!("{}/{}", base.0, input);
            joined.as_str()
        };
        for comp in full.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        Ok(SandboxPath(format!("/{}", parts.join("/"))))
    }

    /// The path as text, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/` (empty for the root), for tar entries and directory handles.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<SandboxPath> {
        if self.is_root() {
            return None;
        }
        let i = self.0.rfind('/').unwrap_or(0);
        Some(SandboxPath(if i == 0 { "/".into() } else { self.0[..i].to_string() }))
    }

    /// The last component (`a.ts` of `/src/a.ts`); empty for the root.
    pub fn file_name(&self) -> &str {
        &self.0[self.0.rfind('/').map_or(0, |i| i + 1)..]
    }

    /// This path with a relative, already-normalised child path appended.
    pub fn join(&self, child: &str) -> Result<SandboxPath> {
        SandboxPath::resolve(self, child.trim_start_matches('/'))
    }

    /// Every directory above this path, outermost first, not counting `/`.
    pub fn ancestors(&self) -> Vec<SandboxPath> {
        let mut out = Vec::new();
        let mut p = self.parent();
        while let Some(cur) = p {
            if cur.is_root() {
                break;
            }
            p = cur.parent();
            out.push(cur);
        }
        out.reverse();
        out
    }
}

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SandboxPath {
        SandboxPath::resolve(&SandboxPath::resolve(&SandboxPath::root(), "/workspace").unwrap(), s).unwrap()
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(p("a.txt").as_str(), "/workspace/a.txt");
        assert_eq!(p("./src//b.ts").as_str(), "/workspace/src/b.ts");
        assert_eq!(p("/etc/hosts").as_str(), "/etc/hosts");
        assert_eq!(p("src/").as_str(), "/workspace/src");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        assert_eq!(p("../../../../etc/passwd").as_str(), "/etc/passwd");
        assert_eq!(p("/..").as_str(), "/");
        assert_eq!(p("a/../../b").as_str(), "/b");
    }

    #[test]
    fn empty_and_nul_are_invalid_path() {
        assert_eq!(SandboxPath::resolve(&SandboxPath::root(), "").unwrap_err().code(), crate::ErrorCode::InvalidPath);
        assert_eq!(
            SandboxPath::resolve(&SandboxPath::root(), "a\0b").unwrap_err().code(),
            crate::ErrorCode::InvalidPath
        );
    }

    #[test]
    fn parent_name_and_ancestors() {
        let x = p("src/lib/a.ts");
        assert_eq!(x.parent().unwrap().as_str(), "/workspace/src/lib");
        assert_eq!(x.file_name(), "a.ts");
        assert_eq!(x.relative(), "workspace/src/lib/a.ts");
        let a: Vec<_> = x.ancestors().iter().map(|a| a.as_str().to_string()).collect();
        assert_eq!(a, ["/workspace", "/workspace/src", "/workspace/src/lib"]);
        assert_eq!(SandboxPath::root().parent(), None);
        assert_eq!(p("/a").parent().unwrap(), SandboxPath::root());
    }
}

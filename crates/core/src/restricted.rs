//! `restrictedPaths`: the user's globs compiled once, relative ones resolved against the workdir,
//! and the checks a write, a delete or a tree delete goes through.

use globset::GlobSet;

use crate::config::build_globset;
use crate::error::{Error, Result};
use crate::paths::SandboxPath;

/// The compiled `restrictedPaths` globs, matched against absolute sandbox paths.
#[derive(Debug, Clone)]
pub(crate) struct RestrictedPaths {
    /// The patterns as the user wrote them, for messages.
    patterns: Vec<String>,
    /// What each pattern was compiled as (absolute; see [`RestrictedPaths::resolved`]).
    effective: Vec<String>,
    set: GlobSet,
    /// For each glob in `set`, the index of the user's pattern it came from.
    origin: Vec<usize>,
}

impl RestrictedPaths {
    #[cfg(test)]
    fn new(patterns: &[String]) -> Result<Self> {
        Self::resolved(patterns, &SandboxPath::root())
    }

    /// Compiles the patterns as users mean them. Matching is against absolute paths, so:
    /// * a relative pattern (`secrets/**`) is taken relative to the workdir (`/workspace/secrets/**`);
    ///   as written it could never match, and the restriction silently never applied;
    /// * one that starts with `**` applies at any depth, as written;
    /// * `X/**` also protects `X` itself, which the glob alone does not match: otherwise deleting
    ///   `/workspace/.git` got past `**/.git/**`.
    pub fn resolved(patterns: &[String], workdir: &SandboxPath) -> Result<Self> {
        let mut effective = Vec::with_capacity(patterns.len());
        let mut globs = Vec::new();
        let mut origin = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let p = p.trim();
            if p.is_empty() {
                return Err(Error::InvalidArgument("restrictedPaths: an empty pattern matches nothing".into()));
            }
            let abs = if p.starts_with('/') || p.starts_with("**") {
                p.to_string()
            } else {
                format!("{}/{}", workdir.as_str().trim_end_matches('/'), p.trim_start_matches("./"))
            };
            globs.push(abs.clone());
            origin.push(i);
            if let Some(stem) = abs.strip_suffix("/**").filter(|s| !s.is_empty()) {
                globs.push(stem.to_string());
                origin.push(i);
            }
            effective.push(abs);
        }
        Ok(Self { patterns: patterns.to_vec(), effective, set: build_globset("restrictedPaths", &globs)?, origin })
    }

    /// Whether no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The pattern that forbids touching `path`: one matching it or any directory above it.
    pub fn check(&self, path: &SandboxPath) -> Option<&str> {
        if self.patterns.is_empty() {
            return None;
        }
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(i) = self.set.matches(cur.as_str()).first() {
                return Some(&self.patterns[self.origin[*i]]);
            }
            p = cur.parent();
        }
        None
    }

    /// Like [`check`](Self::check), but also refuses a directory that holds a protected path, for
    /// recursive deletes. A pattern's fixed prefix (`/etc/` of `/etc/**`) tells where it applies;
    /// patterns that start with a wildcard (`**/.git`) are checked against the named path only.
    pub fn check_tree(&self, path: &SandboxPath) -> Option<&str> {
        if let Some(p) = self.check(path) {
            return Some(p);
        }
        let dir = format!("{}/", path.as_str().trim_end_matches('/'));
        self.effective
            .iter()
            .position(|pat| {
                let fixed = &pat[..pat.find(['*', '?', '[', '{']).unwrap_or(pat.len())];
                fixed.starts_with(&dir)
            })
            .map(|i| self.patterns[i].as_str())
    }
}

impl PartialEq for RestrictedPaths {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_paths_cover_descendants_and_trees() {
        let r = RestrictedPaths::new(&["/etc/**".into(), "**/.git".into()]).unwrap();
        let p = |s: &str| SandboxPath::resolve(&SandboxPath::root(), s).unwrap();
        assert!(r.check(&p("/etc/passwd")).is_some());
        assert!(r.check(&p("/workspace/.git/config")).is_some());
        assert!(r.check(&p("/workspace/src/a.ts")).is_none());
        assert!(r.check(&p("/etc")).is_some(), "X/** protects X itself");
        assert!(r.check_tree(&p("/etc")).is_some());
        assert!(r.check_tree(&p("/")).is_some());
        assert!(r.check_tree(&p("/workspace")).is_none());
    }

    #[test]
    fn relative_restrictions_apply_under_the_workdir_and_a_tree_protects_its_root() {
        let p = |s: &str| SandboxPath::resolve(&SandboxPath::root(), s).unwrap();
        let r = RestrictedPaths::resolved(&["secrets/**".into(), "**/.git/**".into()], &p("/workspace")).unwrap();
        // As a user writes it, relative: it must apply (it never matched before).
        assert_eq!(r.check(&p("/workspace/secrets/key.txt")), Some("secrets/**"));
        assert_eq!(r.check(&p("/workspace/secrets")), Some("secrets/**"), "the directory itself");
        assert_eq!(r.check(&p("/other/secrets/key.txt")), None);
        // `X/**` protects X: deleting the .git directory is refused, its parent's tree too.
        assert_eq!(r.check(&p("/workspace/.git")), Some("**/.git/**"));
        assert_eq!(r.check(&p("/workspace/.git/config")), Some("**/.git/**"));
        assert_eq!(r.check_tree(&p("/workspace/secrets")), Some("secrets/**"));
        assert_eq!(r.check_tree(&p("/workspace")), Some("secrets/**"), "a tree that holds a restricted dir");
        assert!(r.check(&p("/workspace/src/a.ts")).is_none());
        let empty = RestrictedPaths::resolved(&["  ".into()], &p("/workspace")).unwrap_err();
        assert_eq!(empty.code(), crate::ErrorCode::InvalidArgument);
    }
}

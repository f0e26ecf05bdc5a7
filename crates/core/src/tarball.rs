//! Tar archives as the one way files move: `writeFiles` and `refreshFromHost` become a single upload,
//! `exportDirectory` a single download, whatever the backend.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::paths::SandboxPath;

/// Builds an in-memory tar whose entries are sandbox paths relative to `/`, with every parent
/// directory as an explicit entry so no engine has to invent their owner or mode.
pub(crate) struct TarWriter {
    tar: tar::Builder<Vec<u8>>,
    dirs: BTreeSet<SandboxPath>,
    mtime: u64,
}

impl TarWriter {
    /// An empty archive.
    pub fn new() -> Self {
        let mtime = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        TarWriter { tar: tar::Builder::new(Vec::new()), dirs: BTreeSet::new(), mtime }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Adds a directory entry once. Parents are not added: engines create missing ones, and an
    /// entry for an existing directory would reset its owner and mode (`/tmp` would lose 1777).
    pub fn dir(&mut self, path: &SandboxPath) -> Result<()> {
        if !path.is_root() && self.dirs.insert(path.clone()) {
            let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
            self.tar
                .append_data(&mut h, format!("{}/", path.relative()), std::io::empty())
                .map_err(|e| Error::io(format!("building tar entry {path}"), e))?;
        }
        Ok(())
    }

    /// Adds a regular file with `mode`; missing parent directories are created on extraction.
    pub fn file(&mut self, path: &SandboxPath, data: &[u8], mode: u32) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid_path("/", "a file cannot be written at the sandbox root itself"));
        }
        let mut h = self.header(tar::EntryType::Regular, mode & 0o7777, data.len() as u64);
        self.tar
            .append_data(&mut h, path.relative(), data)
            .map_err(|e| Error::io(format!("building tar entry {path}"), e))
    }

    /// Adds a symbolic link pointing at `target` (kept as written, not followed).
    pub fn symlink(&mut self, path: &SandboxPath, target: &Path) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path.relative(), target)
            .map_err(|e| Error::io(format!("building tar entry {path}"), e))
    }

    /// The finished archive bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.tar.into_inner().map_err(|e| Error::io("finishing tar archive", e))
    }
}

/// Glob patterns that leave files out of a host import. A pattern with no `/` matches a file or
/// directory name anywhere (`node_modules`, `*.log`); one with a `/` matches the path relative to
/// the imported directory (`dist/cache/**`).
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    /// Compiles the patterns; a malformed one is `INVALID_ARGUMENT`.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let glob = Glob::new(trimmed.trim_start_matches("./"))
                .map_err(|e| Error::InvalidArgument(format!("exclude pattern {p:?}: {e}")))?;
            if trimmed.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(format!("exclude: {e}")));
        Ok(Excludes { names: build(names)?, paths: build(paths)? })
    }

    /// Whether the entry at `rel` (relative, `/`-separated) with file name `name` is left out.
    pub fn excludes(&self, rel: &str, name: &str) -> bool {
        self.names.is_match(name) || self.paths.is_match(rel)
    }
}

/// Packs the host directory `src` into a tar rooted at sandbox path `dest`, leaving out `excludes`.
/// Symlinks are copied as links, never followed, so the import cannot pull in files outside `src`.
/// `dest` itself gets an entry only when `create_dest` (it does not exist yet). Returns the
/// archive and the sandbox paths it writes (for restricted-path checks).
pub(crate) fn pack_host_dir(
    src: &Path,
    dest: &SandboxPath,
    excludes: &Excludes,
    create_dest: bool,
) -> Result<(Vec<u8>, Vec<SandboxPath>)> {
    let meta = std::fs::metadata(src).map_err(|e| Error::io(format!("reading host directory {}", src.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!("{} is not a directory", src.display())));
    }
    let mut w = TarWriter::new();
    let mut written = Vec::new();
    if create_dest {
        w.dir(dest)?;
    }
    let mut stack = vec![(src.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let mut entries: Vec<_> =
            rd.collect::<std::io::Result<Vec<_>>>().map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::invalid_path(
                    entry.path().display().to_string(),
                    "host file names must be UTF-8 to be imported",
                ));
            };
            let rel = if rel_dir.is_empty() { name.to_string() } else { format!("{rel_dir}/{name}") };
            if excludes.excludes(&rel, name) {
                continue;
            }
            let target = dest.join(&rel)?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if ft.is_dir() {
                w.dir(&target)?;
                stack.push((path, rel));
            } else if ft.is_symlink() {
                let link =
                    std::fs::read_link(&path).map_err(|e| Error::io(format!("reading link {}", path.display()), e))?;
                w.symlink(&target, &link)?;
                written.push(target);
            } else if ft.is_file() {
                let data = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                let mode =
                    file_mode(&entry.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?);
                w.file(&target, &data, mode)?;
                written.push(target);
            }
            // sockets, fifos and devices are not project files: skipped
        }
    }
    Ok((w.finish()?, written))
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Unpacks a tar whose entries are relative (`./a`, `sub/b`) into the host directory `dest`. The
/// tar crate refuses entries that would land outside `dest`, through `..` or through a symlink.
pub(crate) fn unpack_to_host(tar_bytes: &[u8], dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let mut ar = tar::Archive::new(tar_bytes);
    // Permission bits only: a sandbox must not hand the host a setuid file.
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    ar.unpack(dest).map_err(|e| Error::io(format!("unpacking into {}", dest.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> SandboxPath {
        SandboxPath::resolve(&SandboxPath::root(), s).unwrap()
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().entry_type())
            })
            .collect()
    }

    #[test]
    fn files_carry_no_parent_entries_so_existing_dirs_keep_their_mode() {
        let mut w = TarWriter::new();
        w.file(&sp("/tmp/a/x.txt"), b"x", 0o644).unwrap();
        w.dir(&sp("/new/dir")).unwrap();
        w.dir(&sp("/new/dir")).unwrap();
        let names: Vec<_> = entries(&w.finish().unwrap()).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["tmp/a/x.txt", "new/dir/"]);
    }

    #[test]
    fn excludes_match_names_anywhere_and_paths_from_the_root() {
        let ex =
            Excludes::new(&["node_modules".into(), ".git/".into(), "*.log".into(), "dist/cache/**".into()]).unwrap();
        assert!(ex.excludes("node_modules", "node_modules"));
        assert!(ex.excludes("pkg/node_modules", "node_modules"));
        assert!(ex.excludes(".git", ".git"));
        assert!(ex.excludes("a/b.log", "b.log"));
        assert!(ex.excludes("dist/cache/x", "x"));
        assert!(!ex.excludes("dist/app.js", "app.js"));
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    #[test]
    fn host_dir_import_skips_excludes_and_keeps_links_as_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::write(root.join("src/a.ts"), "a").unwrap();
        std::fs::write(root.join("node_modules/x/i.js"), "i").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let ex = Excludes::new(&["node_modules".into()]).unwrap();
        let (bytes, written) = pack_host_dir(root, &sp("/app"), &ex, true).unwrap();
        let e = entries(&bytes);
        assert!(e.iter().any(|(n, _)| n == "app/src/a.ts"));
        assert!(!e.iter().any(|(n, _)| n.contains("node_modules")));
        #[cfg(unix)]
        assert!(e.iter().any(|(n, t)| n == "app/link" && *t == tar::EntryType::Symlink));
        assert!(written.contains(&sp("/app/src/a.ts")));
    }

    #[cfg(unix)]
    #[test]
    fn unpack_drops_setuid_bits() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o4755);
        b.append_data(&mut h, "suid", &b"x"[..]).unwrap();
        unpack_to_host(&b.into_inner().unwrap(), tmp.path()).unwrap();
        let mode = std::fs::metadata(tmp.path().join("suid")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn unpack_refuses_entries_that_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // append_data refuses `..`, so write the name into the header by hand.
        h.as_old_mut().name[..9].copy_from_slice(b"../evil\0\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let dest = tmp.path().join("out");
        let _ = unpack_to_host(&bytes, &dest);
        assert!(!tmp.path().join("evil").exists());
    }
}

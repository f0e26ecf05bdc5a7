//! Tar archives as the one way files move: `writeFiles` and `refreshFromHost` become a single upload,
//! `exportDirectory` a single download, whatever the backend. Archives are written to and read
//! from streams: file contents pass through, never gathered whole.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::stream::ExactLen;

/// Builds a tar whose entries are sandbox paths relative to `/`, in memory or into a stream.
pub(crate) struct TarWriter<W: Write = Vec<u8>> {
    tar: tar::Builder<W>,
    dirs: BTreeSet<SandboxPath>,
    mtime: u64,
}

impl TarWriter<Vec<u8>> {
    /// An empty archive in memory.
    pub fn new() -> Self {
        TarWriter::to(Vec::new())
    }
}

impl<W: Write> TarWriter<W> {
    /// An empty archive written into `out` as entries are added.
    pub fn to(out: W) -> Self {
        let mtime = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        TarWriter { tar: tar::Builder::new(out), dirs: BTreeSet::new(), mtime }
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
        self.file_from(path, data, data.len() as u64, mode)
    }

    /// Adds a regular file of exactly `len` bytes read from `data` as they are written out; a
    /// source that ends early fails the archive rather than shifting every later entry.
    pub fn file_from(&mut self, path: &SandboxPath, data: impl Read, len: u64, mode: u32) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid_path("/", "a file cannot be written at the sandbox root itself"));
        }
        let mut h = self.header(tar::EntryType::Regular, mode & 0o7777, len);
        self.tar
            .append_data(&mut h, path.relative(), ExactLen::new(data, len))
            .map_err(|e| Error::from_stream(format!("building tar entry {path}"), e))
    }

    /// Adds a symbolic link pointing at `target` (kept as written, not followed).
    pub fn symlink(&mut self, path: &SandboxPath, target: &Path) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path.relative(), target)
            .map_err(|e| Error::io(format!("building tar entry {path}"), e))
    }

    /// Ends the archive and gives back what it was written to.
    pub fn finish(self) -> Result<W> {
        self.tar.into_inner().map_err(|e| Error::from_stream("finishing tar archive", e))
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

/// What one host entry becomes in the sandbox.
enum Planned {
    Dir,
    Symlink(PathBuf),
    File { host: PathBuf, mode: u32 },
}

/// A host directory walked for import: the sandbox paths it writes, known before any content is
/// read (so restricted paths are refused before anything is sent), and where each comes from.
pub(crate) struct HostImport {
    create_dest: Option<SandboxPath>,
    entries: Vec<(SandboxPath, Planned)>,
}

impl HostImport {
    /// Walks the host directory `src` for an import at sandbox path `dest`, leaving out
    /// `excludes`. Symlinks are copied as links, never followed, so the import cannot pull in
    /// files outside `src`. `dest` itself gets an entry only when `create_dest` (it does not exist
    /// yet). Only names and modes are kept; contents are read when the archive is written.
    pub fn plan(src: &Path, dest: &SandboxPath, excludes: &Excludes, create_dest: bool) -> Result<Self> {
        let meta =
            std::fs::metadata(src).map_err(|e| Error::io(format!("reading host directory {}", src.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::InvalidArgument(format!("{} is not a directory", src.display())));
        }
        let mut plan = HostImport { create_dest: create_dest.then(|| dest.clone()), entries: Vec::new() };
        let mut stack = vec![(src.to_path_buf(), String::new())];
        while let Some((dir, rel_dir)) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
            let mut entries: Vec<_> = rd
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
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
                    plan.entries.push((target, Planned::Dir));
                    stack.push((path, rel));
                } else if ft.is_symlink() {
                    let link = std::fs::read_link(&path)
                        .map_err(|e| Error::io(format!("reading link {}", path.display()), e))?;
                    plan.entries.push((target, Planned::Symlink(link)));
                } else if ft.is_file() {
                    let meta = entry.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                    plan.entries.push((target, Planned::File { host: path, mode: file_mode(&meta) }));
                }
                // sockets, fifos and devices are not project files: skipped
            }
        }
        Ok(plan)
    }

    /// The files and links the import writes (directories only hold them).
    pub fn written(&self) -> impl Iterator<Item = &SandboxPath> {
        self.entries.iter().filter(|(_, p)| !matches!(p, Planned::Dir)).map(|(t, _)| t)
    }

    /// Writes the archive into `out`, reading each file as its entry is written.
    pub fn write(self, out: impl Write) -> Result<()> {
        let mut w = TarWriter::to(out);
        if let Some(dest) = &self.create_dest {
            w.dir(dest)?;
        }
        for (target, planned) in self.entries {
            match planned {
                Planned::Dir => w.dir(&target)?,
                Planned::Symlink(link) => w.symlink(&target, &link)?,
                Planned::File { host, mode } => {
                    let f =
                        std::fs::File::open(&host).map_err(|e| Error::io(format!("reading {}", host.display()), e))?;
                    let len = f.metadata().map_err(|e| Error::io(format!("reading {}", host.display()), e))?.len();
                    w.file_from(&target, f, len, mode)?;
                }
            }
        }
        w.finish()?;
        Ok(())
    }
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

/// Unpacks a tar whose entries are relative (`./a`, `sub/b`), read as it arrives, into the host
/// directory `dest`. The tar crate refuses entries that would land outside `dest`, through `..` or
/// through a symlink.
pub(crate) fn unpack_to_host(tar: impl Read, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let mut ar = tar::Archive::new(tar);
    // Permission bits only: a sandbox must not hand the host a setuid file.
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    ar.unpack(dest).map_err(|e| Error::from_stream(format!("unpacking into {}", dest.display()), e))
}

/// The first real entry of an archive: its type, size and link target.
#[derive(Debug)]
pub(crate) struct FirstEntry {
    pub kind: tar::EntryType,
    pub size: u64,
    pub link: Option<PathBuf>,
}

/// Reads the headers of an archive's first entry from `r` (skipping PAX and GNU long-name
/// records, whose values it applies), leaving `r` at the entry's data. `None` for an empty archive.
pub(crate) async fn first_entry<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<FirstEntry>> {
    use tokio::io::AsyncReadExt;
    /// Extension records are names and a few numbers; a larger one is not an archive we made.
    const MAX_EXTENSION: u64 = 1024 * 1024;
    let mut size_override = None;
    let mut link_override = None;
    loop {
        let mut block = [0u8; 512];
        r.read_exact(&mut block).await?;
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size()?;
        let kind = header.entry_type();
        let extension = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        if !extension {
            let link = match link_override {
                Some(l) => Some(l),
                None => header.link_name()?.map(|l| l.into_owned()),
            };
            return Ok(Some(FirstEntry { kind, size: size_override.unwrap_or(size), link }));
        }
        if size > MAX_EXTENSION {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "an oversized tar extension record"));
        }
        let mut data = vec![0u8; size.div_ceil(512) as usize * 512];
        r.read_exact(&mut data).await?;
        data.truncate(size as usize);
        if kind.is_gnu_longlink() {
            let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
            link_override = Some(PathBuf::from(String::from_utf8_lossy(&data[..end]).into_owned()));
        } else if kind.is_pax_local_extensions() {
            for ext in tar::PaxExtensions::new(&data).flatten() {
                match (ext.key(), ext.value()) {
                    (Ok("size"), Ok(v)) => size_override = v.parse().ok(),
                    (Ok("linkpath"), Ok(v)) => link_override = Some(PathBuf::from(v)),
                    _ => {}
                }
            }
        }
    }
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
        let plan = HostImport::plan(root, &sp("/app"), &ex, true).unwrap();
        let written: Vec<SandboxPath> = plan.written().cloned().collect();
        let mut bytes = Vec::new();
        plan.write(&mut bytes).unwrap();
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
        unpack_to_host(&b.into_inner().unwrap()[..], tmp.path()).unwrap();
        let mode = std::fs::metadata(tmp.path().join("suid")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[tokio::test]
    async fn the_first_entry_is_read_with_long_names_and_links() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(80) + "target";
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l".repeat(150), &long).unwrap();
        let bytes = b.into_inner().unwrap();
        let e = first_entry(&mut &bytes[..]).await.unwrap().unwrap();
        assert!(e.kind.is_symlink());
        assert_eq!(e.link.unwrap(), PathBuf::from(&long));

        let mut w = TarWriter::new();
        w.file(&sp("/a/f"), b"12345", 0o644).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = &bytes[..];
        let e = first_entry(&mut r).await.unwrap().unwrap();
        assert_eq!((e.kind.is_file(), e.size), (true, 5));
        assert_eq!(&r[..5], b"12345", "the reader is left at the data");
        assert!(first_entry(&mut &[0u8; 1024][..]).await.unwrap().is_none());
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
        let _ = unpack_to_host(&bytes[..], &dest);
        assert!(!tmp.path().join("evil").exists());
    }
}

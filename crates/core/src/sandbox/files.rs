//! The sandbox's file operations: writes, reads, deletes, listings, and copies between the host
//! and the sandbox, each with the path and restricted-path rules applied before the engine is asked.

use std::path::Path;

use super::Sandbox;
use crate::backend::{DirEntry, EntryKind};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::tarball::{pack_host_dir, unpack_to_host, Excludes, TarWriter};
use crate::transfer::{FileWrite, RefreshOptions};

impl Sandbox {
    /// Writes one file (text or bytes), creating parent directories; mode 0644.
    pub async fn write_file(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        self.write_files([FileWrite::new(path, contents.as_ref())]).await
    }

    /// Writes one file with the given permission bits.
    pub async fn write_file_with_mode(&self, path: &str, contents: impl AsRef<[u8]>, mode: u32) -> Result<()> {
        self.write_files([FileWrite::new(path, contents.as_ref()).mode(mode)]).await
    }

    /// Writes many files in ONE engine round trip (a single tar upload). Nothing is written when any
    /// path is invalid or restricted.
    pub async fn write_files<I, F>(&self, files: I) -> Result<()>
    where
        I: IntoIterator<Item = F>,
        F: Into<FileWrite>,
    {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let mut resolved = Vec::new();
        for f in files {
            let f: FileWrite = f.into();
            if f.mode > 0o7777 {
                // Masking would silently write something else (99999999 became 0377).
                return Err(Error::InvalidArgument(format!(
                    "{}: mode {:#o} is not a permission mode (at most 0o7777)",
                    f.path, f.mode
                )));
            }
            let p = self.resolve_path(&f.path)?;
            if p.is_root() {
                return Err(Error::invalid_path(f.path, "cannot write a file over the sandbox root"));
            }
            self.check_restricted(&p, false)?;
            resolved.push((p, f));
        }
        if resolved.is_empty() {
            return Ok(());
        }
        let targets: Vec<SandboxPath> = resolved.iter().map(|(p, _)| p.clone()).collect();
        self.guard(self.refuse_symlinked_parents(&targets)).await?;
        let tar = tokio::task::spawn_blocking(move || {
            let mut w = TarWriter::new();
            for (p, f) in &resolved {
                w.file(p, &f.contents, f.mode)?;
            }
            w.finish()
        })
        .await
        .map_err(|e| Error::io("building the upload", std::io::Error::other(e)))??;
        self.guard(self.inner.engine.upload_tar(tar)).await
    }

    /// Reads a file byte for byte (binary-safe).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.resolve_path(path)?;
        self.guard(self.inner.engine.read_file(&p)).await
    }

    /// Reads a UTF-8 text file; a file that is not UTF-8 is `INVALID_ARGUMENT` (use `read_file`).
    pub async fn read_to_string(&self, path: &str) -> Result<String> {
        let bytes = self.read_file(path).await?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!("{path} is not valid UTF-8 text; read it as bytes with read_file"))
        })
    }

    /// Deletes a file or directory (recursively). A missing path is `NOT_FOUND`.
    pub async fn delete_file(&self, path: &str) -> Result<()> {
        let p = self.resolve_path(path)?;
        if p.is_root() {
            return Err(Error::invalid_path(path, "the sandbox root cannot be deleted"));
        }
        self.check_restricted(&p, true)?;
        self.guard(async {
            self.refuse_symlinked_parents(std::slice::from_ref(&p)).await?;
            match self.inner.engine.stat(&p).await? {
                None => Err(Error::not_found(&self.inner.id, "file", p.to_string())),
                Some(_) => self.inner.engine.remove(&p).await,
            }
        })
        .await
    }

    /// Whether anything exists at `path` (a final symlink is not followed).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let p = self.resolve_path(path)?;
        Ok(self.guard(self.inner.engine.stat(&p)).await?.is_some())
    }

    /// Lists a directory: name, kind and size of each entry, sorted by name.
    pub async fn list_directory(&self, path: &str) -> Result<Vec<DirEntry>> {
        let p = self.resolve_path(path)?;
        self.guard(async {
            match self.inner.engine.stat(&p).await? {
                None => Err(Error::not_found(&self.inner.id, "directory", p.to_string())),
                Some(EntryKind::File) => Err(Error::InvalidArgument(format!("{p} is a file, not a directory"))),
                Some(_) => self.inner.engine.list_dir(&p).await,
            }
        })
        .await
    }

    /// Copies the sandbox directory `container_path` into `host_path` (created if missing; files
    /// there are overwritten, others kept).
    pub async fn export_directory(&self, container_path: &str, host_path: impl AsRef<Path>) -> Result<()> {
        let p = self.resolve_path(container_path)?;
        let host = host_path.as_ref().to_path_buf();
        let tar = self
            .guard(async {
                match self.inner.engine.stat(&p).await? {
                    None => Err(Error::not_found(&self.inner.id, "directory", p.to_string())),
                    Some(EntryKind::File) => {
                        Err(Error::InvalidArgument(format!("{p} is a file; use read_file for files")))
                    }
                    Some(_) => self.inner.engine.download_tar(&p).await,
                }
            })
            .await?;
        tokio::task::spawn_blocking(move || unpack_to_host(&tar, &host))
            .await
            .map_err(|e| Error::io("exporting", std::io::Error::other(e)))?
    }

    /// Copies the host directory `host_path` into the sandbox at `container_path` in one upload,
    /// leaving out `opts.exclude` (e.g. `node_modules`, `.git`). Symlinks are copied as links.
    pub async fn refresh_from_host(
        &self,
        host_path: impl AsRef<Path>,
        container_path: &str,
        opts: RefreshOptions,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let dest = self.resolve_path(container_path)?;
        self.check_restricted(&dest, false)?;
        let excludes = Excludes::new(&opts.exclude)?;
        let src = host_path.as_ref().to_path_buf();
        let dest2 = dest.clone();
        // An existing destination keeps its owner and mode: only a missing one gets an entry.
        let dest_missing = self.guard(self.inner.engine.stat(&dest)).await?.is_none();
        let (tar, written) = tokio::task::spawn_blocking(move || pack_host_dir(&src, &dest2, &excludes, dest_missing))
            .await
            .map_err(|e| Error::io("packing the host directory", std::io::Error::other(e)))??;
        for p in &written {
            self.check_restricted(p, false)?;
        }
        self.guard(async {
            self.refuse_symlinked_parents(&written).await?;
            self.inner.engine.upload_tar(tar).await
        })
        .await
    }
}

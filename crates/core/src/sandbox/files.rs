//! The sandbox's file operations: writes, reads, deletes, listings, and copies between the host
//! and the sandbox, each with the path and restricted-path rules applied before the engine is asked.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::Sandbox;
use crate::backend::{DirEntry, EntryKind};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::stream::{self, FileReader};
use crate::tarball::{unpack_to_host, Excludes, HostImport, TarWriter};
use crate::transfer::{FileWrite, RefreshOptions};

/// The largest file [`Sandbox::read_file`] reads into memory (64 MiB); a larger one is
/// `TOO_LARGE`, refused before any of it is read. [`Sandbox::open_file`] and
/// [`Sandbox::read_file_to`] stream files of any size.
pub const READ_FILE_LIMIT: u64 = 64 * 1024 * 1024;

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
        // The contents are in memory already (the caller's): the archive streams out of them.
        let tar = stream::produce(move |out| {
            let mut w = TarWriter::to(out);
            for (p, f) in &resolved {
                w.file(p, &f.contents, f.mode)?;
            }
            w.finish().map(drop)
        });
        self.guard(self.inner.engine.upload_tar(tar)).await
    }

    /// Writes one file from a host file, streamed (any size, never held in memory); returns the
    /// bytes written. Parent directories are created; `mode` as in
    /// [`write_file_with_mode`](Self::write_file_with_mode).
    pub async fn write_file_from_host(&self, path: &str, host_path: impl AsRef<Path>, mode: u32) -> Result<u64> {
        let host = host_path.as_ref().to_path_buf();
        let file = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&host).map_err(|e| Error::io(format!("opening {}", host.display()), e))?;
            let meta = f.metadata().map_err(|e| Error::io(format!("reading {}", host.display()), e))?;
            if !meta.is_file() {
                return Err(Error::InvalidArgument(format!("{} is not a regular file", host.display())));
            }
            Ok(f)
        })
        .await
        .map_err(|e| Error::io("opening the host file", std::io::Error::other(e)))??;
        self.upload_file(path, file, mode).await
    }

    /// Writes one file from any reader, streamed; returns the bytes written. The data is first
    /// spooled to an unnamed host temp file (a tar entry needs its size up front, and a reader
    /// that fails halfway must not leave half a file in the sandbox), so memory stays flat.
    pub async fn write_file_from<R>(&self, path: &str, mut reader: R, mode: u32) -> Result<u64>
    where
        R: AsyncRead + Unpin + Send,
    {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let spool = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(|e| Error::io("making a spool file", std::io::Error::other(e)))?
            .map_err(|e| Error::io("making a spool file", e))?;
        let mut spool = tokio::fs::File::from_std(spool);
        tokio::io::copy(&mut reader, &mut spool).await.map_err(|e| {
            Error::from_stream(format!("sandbox {}: receiving the contents of {path}", self.inner.id), e)
        })?;
        let mut spool = spool.into_std().await;
        std::io::Seek::rewind(&mut spool).map_err(|e| Error::io("rewinding the spool file", e))?;
        self.upload_file(path, spool, mode).await
    }

    /// Uploads the open host `file` (its length as of now) to `path` in one tar, streamed.
    async fn upload_file(&self, path: &str, file: std::fs::File, mode: u32) -> Result<u64> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        if mode > 0o7777 {
            return Err(Error::InvalidArgument(format!(
                "{path}: mode {mode:#o} is not a permission mode (at most 0o7777)"
            )));
        }
        let p = self.resolve_path(path)?;
        if p.is_root() {
            return Err(Error::invalid_path(path, "cannot write a file over the sandbox root"));
        }
        self.check_restricted(&p, false)?;
        self.guard(self.refuse_symlinked_parents(std::slice::from_ref(&p))).await?;
        let len = file.metadata().map_err(|e| Error::io(format!("reading the contents of {path}"), e))?.len();
        let tar = stream::produce(move |out| {
            let mut w = TarWriter::to(out);
            w.file_from(&p, file, len, mode)?;
            w.finish().map(drop)
        });
        self.guard(self.inner.engine.upload_tar(tar)).await?;
        Ok(len)
    }

    /// Reads a file byte for byte (binary-safe) into memory: at most [`READ_FILE_LIMIT`] bytes, a
    /// larger file is `TOO_LARGE` before any of it is read. Stream big files with
    /// [`open_file`](Self::open_file) or [`read_file_to`](Self::read_file_to).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        self.guard(async {
            let mut r = self.open_file_within(path, READ_FILE_LIMIT).await?;
            let mut data = Vec::with_capacity(r.size().min(READ_FILE_LIMIT) as usize);
            r.read_to_end(&mut data)
                .await
                .map_err(|e| Error::from_stream(format!("sandbox {}: reading {path}", self.inner.id), e))?;
            Ok(data)
        })
        .await
    }

    /// Opens a file for reading as a stream, of any size: its size is known at once, its bytes
    /// arrive as they are read.
    pub async fn open_file(&self, path: &str) -> Result<FileReader> {
        self.open_file_within(path, u64::MAX).await
    }

    /// [`open_file`](Self::open_file) for a file of at most `limit` bytes: a larger one is
    /// `TOO_LARGE`, refused before any of it is read.
    pub async fn open_file_within(&self, path: &str, limit: u64) -> Result<FileReader> {
        let p = self.resolve_path(path)?;
        self.guard(self.inner.engine.read_file(&p, limit)).await
    }

    /// Streams a file of any size into `out`; returns the bytes copied.
    pub async fn read_file_to<W>(&self, path: &str, out: &mut W) -> Result<u64>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.guard(async {
            let mut r = self.open_file(path).await?;
            tokio::io::copy(&mut r, out)
                .await
                .map_err(|e| Error::from_stream(format!("sandbox {}: copying {path} out", self.inner.id), e))
        })
        .await
    }

    /// Reads a UTF-8 text file; a file that is not UTF-8 is `INVALID_ARGUMENT` (use `read_file`).
    pub async fn read_to_string(&self, path: &str) -> Result<String> {
        let bytes = self.read_file(path).await?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!("{path} is not valid UTF-8 text; read it as bytes with read_file"))
        })
    }

    /// Copies a file of any size out to `host_path`, streamed; returns the bytes copied. The copy
    /// lands under a temporary name next to `host_path` and is renamed into place when complete, so
    /// a failed read never leaves a half file there (nor replaces what was).
    pub async fn read_file_to_host(&self, path: &str, host_path: impl AsRef<Path>) -> Result<u64> {
        let host = host_path.as_ref().to_path_buf();
        let dir = match host.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let landing = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(&dir))
            .await
            .map_err(|e| Error::io("making the landing file", std::io::Error::other(e)))?
            .map_err(|e| Error::io(format!("writing next to {}", host.display()), e))?;
        let (file, landing) = landing.into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let n = self.read_file_to(path, &mut out).await?;
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| Error::io(format!("writing {}", host.display()), e))?;
        drop(out);
        landing.persist(&host).map_err(|e| Error::io(format!("writing {}", host.display()), e.error))?;
        Ok(n)
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
        self.guard(async {
            let tar = match self.inner.engine.stat(&p).await? {
                None => return Err(Error::not_found(&self.inner.id, "directory", p.to_string())),
                Some(EntryKind::File) => {
                    return Err(Error::InvalidArgument(format!("{p} is a file; use read_file for files")))
                }
                Some(_) => self.inner.engine.download_tar(&p).await?,
            };
            // Unpacked as it arrives: a tree of any size goes to disk, never into memory.
            stream::consume(tar, "exporting", move |r| unpack_to_host(r, &host)).await
        })
        .await
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
        // Names first (checked before anything is sent), contents streamed during the upload.
        let plan = tokio::task::spawn_blocking(move || HostImport::plan(&src, &dest2, &excludes, dest_missing))
            .await
            .map_err(|e| Error::io("walking the host directory", std::io::Error::other(e)))??;
        let written: Vec<SandboxPath> = plan.written().cloned().collect();
        for p in &written {
            self.check_restricted(p, false)?;
        }
        self.guard(async {
            self.refuse_symlinked_parents(&written).await?;
            self.inner.engine.upload_tar(stream::produce(move |out| plan.write(out))).await
        })
        .await
    }
}

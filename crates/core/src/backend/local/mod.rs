//! The local backend: a private host directory stands for the sandbox root and commands run as
//! host processes in their own process group. Isolation is `process` only: commands see the host.
//!
//! Every file operation goes through a capability handle on the sandbox directory (cap-std), so no
//! path, `..` or symlink (even one a command planted) can read or write outside it; such a path is
//! `INVALID_PATH`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::{Dir, OpenOptions, PermissionsExt};
use tokio::io::AsyncReadExt;

use super::{
    check_file_size, check_list_len, BackendKind, DirEntry, Engine, EntryKind, ExecSpec, Isolation, PortMapping,
};
use crate::config::ResolvedConfig;
use crate::error::{Error, Result};
use crate::exec::RunningExec;
use crate::paths::SandboxPath;
use crate::stream::{self, ByteStream, ExactLen, FileReader};

mod cgroup;
mod copy;
mod exec;
mod snapshot;

use cgroup::SandboxCgroup;

/// The host directory that holds every local sandbox: `$DAGGER_SANDBOX_LOCAL_DIR`, else
/// `$XDG_RUNTIME_DIR/dagger-sandbox`, else `dagger-sandbox-<uid>` under the system temp directory.
/// It is per user and must be private (mode 0700, ours, no symlink; `private_dir`): a shared
/// one would let another user swap a sandbox's tree under our commands.
pub fn local_sandbox_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("DAGGER_SANDBOX_LOCAL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("dagger-sandbox"),
        None => crate::private_dir::per_user(&std::env::temp_dir(), "dagger-sandbox"),
    }
}

/// The sandbox parent, made private when missing and refused when it is not (`INVALID_ARGUMENT`
/// with what is wrong: another user's, a symlink, or open to others).
fn private_parent() -> Result<PathBuf> {
    let parent = local_sandbox_parent();
    crate::private_dir::ensure_private(&parent, "the local sandbox directory")?;
    Ok(parent)
}

/// The file in a local sandbox's directory naming the process that owns it (`pid@boot-id`).
pub(crate) const OWNER_FILE: &str = "owner";

/// Frees a local sandbox no handle holds (an orphan, or one a crashed daemon left): stops the
/// processes its commands left running, then removes its directory `home`. Already gone is fine.
pub(crate) fn remove_orphan_dir(home: &Path, id: &str) -> Result<()> {
    if let Some(cg) = SandboxCgroup::find(home) {
        cg.kill_and_remove();
    }
    if !id.is_empty() {
        exec::kill_sandbox_processes(id);
    }
    match std::fs::remove_dir_all(home) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", home.display()), e)),
        _ => Ok(()),
    }
}

/// One local sandbox: `<parent>/<id>/root` is its `/`. The files live behind an `Arc` so blocking
/// file work can move to tokio's blocking pool on any runtime flavour.
pub(crate) struct LocalEngine {
    fs: Arc<LocalFs>,
    /// Host processes bind host ports directly, so each port maps to itself.
    ports: Vec<u16>,
}

/// The sandbox directory and the capability handle all file work goes through.
struct LocalFs {
    id: String,
    /// `<parent>/<id>`: removed whole on close.
    home: PathBuf,
    /// `<home>/root`, the sandbox's `/` on the host.
    root_path: PathBuf,
    root: Dir,
    /// The owner label, copied to forks.
    owner: String,
    /// The sandbox's cgroup, where this host lets us make one: kills then reach every process.
    cgroup: Option<SandboxCgroup>,
}

impl LocalEngine {
    /// Makes the private directory for sandbox `id`, with the workdir, `/tmp` and `/root` inside.
    pub(crate) fn create(cfg: &ResolvedConfig, id: &str) -> Result<Self> {
        Ok(LocalEngine { fs: Arc::new(LocalFs::create(cfg, id)?), ports: cfg.ports.clone() })
    }

    /// Takes back the existing directory of sandbox `id`; `NOT_FOUND` when it is gone or is not at
    /// `resource_id` (the root a previous handle reported).
    pub(crate) fn reattach(cfg: &ResolvedConfig, id: &str, resource_id: &str) -> Result<Self> {
        let home = private_parent()?.join(id);
        let root_path = home.join("root");
        if root_path != Path::new(resource_id) || !root_path.is_dir() {
            return Err(Error::not_found(id, "local sandbox directory", resource_id.to_string()));
        }
        let root = Dir::open_ambient_dir(&root_path, cap_std::ambient_authority())
            .map_err(|e| Error::io(format!("opening {}", root_path.display()), e))?;
        let cgroup = SandboxCgroup::find(&home);
        let fs = LocalFs { id: id.to_string(), home, root_path, root, owner: cfg.owner.clone(), cgroup };
        Ok(LocalEngine { fs: Arc::new(fs), ports: cfg.ports.clone() })
    }

    /// Runs blocking file work on the blocking pool.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&LocalFs) -> Result<T> + Send + 'static) -> Result<T> {
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || f(&fs))
            .await
            .map_err(|e| Error::io("local file work", io::Error::other(e)))?
    }
}

impl LocalFs {
    fn create(cfg: &ResolvedConfig, id: &str) -> Result<Self> {
        let e = Self::make(id, &cfg.owner)?;
        for dir in [cfg.workdir.relative(), "tmp", "root"] {
            if !dir.is_empty() {
                e.root.create_dir_all(dir).map_err(|err| e.map_err(err, "creating", &cfg.workdir))?;
            }
        }
        Ok(e)
    }

    fn make(id: &str, owner: &str) -> Result<Self> {
        let parent = private_parent()?;
        let home = parent.join(id);
        let root_path = home.join("root");
        let mk = |p: &Path| {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(p).map_err(|e| Error::io(format!("creating local sandbox directory {}", p.display()), e))
        };
        mk(&root_path)?;
        std::fs::write(home.join(OWNER_FILE), owner)
            .map_err(|e| Error::io(format!("writing {}", home.join(OWNER_FILE).display()), e))?;
        let root = Dir::open_ambient_dir(&root_path, cap_std::ambient_authority())
            .map_err(|e| Error::io(format!("opening {}", root_path.display()), e))?;
        let cgroup = SandboxCgroup::create(&home, id);
        Ok(LocalFs { id: id.to_string(), home, root_path, root, owner: owner.to_string(), cgroup })
    }

    /// The sandbox path as a path relative to the root handle (`.` for `/`).
    fn rel(path: &SandboxPath) -> &Path {
        if path.is_root() {
            Path::new(".")
        } else {
            Path::new(path.relative())
        }
    }

    /// Turns a host I/O error on `path` into the API's error codes.
    fn map_err(&self, e: io::Error, op: &str, path: &SandboxPath) -> Error {
        let text = e.to_string();
        if text.contains("outside of the filesystem") || text.contains("outside the filesystem") {
            return Error::invalid_path(
                path.to_string(),
                "it leads outside the sandbox (through a symlink or an absolute link)",
            );
        }
        match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(&self.id, "path", path.to_string()),
            io::ErrorKind::IsADirectory => {
                Error::InvalidArgument(format!("sandbox {}: {path} is a directory", self.id))
            }
            io::ErrorKind::NotADirectory => {
                Error::InvalidArgument(format!("sandbox {}: a parent of {path} is not a directory", self.id))
            }
            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                Error::InvalidArgument(format!("sandbox {}: {op} {path}: {e}", self.id))
            }
            _ if e.raw_os_error() == Some(40) => {
                Error::invalid_path(path.to_string(), "too many levels of symbolic links")
            }
            _ => Error::io(format!("sandbox {}: {op} {path}", self.id), e),
        }
    }

    /// Creates a directory and its parents. An existing link there that leads out of the sandbox is
    /// `INVALID_PATH`, not "file exists".
    fn create_dirs(&self, path: &SandboxPath) -> Result<()> {
        self.root.create_dir_all(Self::rel(path)).map_err(|e| match self.root.open_dir(Self::rel(path)) {
            Err(why) if e.kind() == io::ErrorKind::AlreadyExists => self.map_err(why, "creating", path),
            _ => self.map_err(e, "creating", path),
        })
    }

    /// Writes one archive entry, replacing a file or link already there (as tar extraction does).
    fn write_entry<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path().map_err(|e| Error::io("reading the upload", e))?.to_string_lossy().into_owned();
        let path = SandboxPath::resolve(&SandboxPath::root(), &raw)?;
        let rel = Self::rel(&path);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        if kind.is_dir() {
            if path.is_root() {
                return Ok(());
            }
            return self.create_dirs(&path);
        }
        if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
            self.create_dirs(&parent)?;
        }
        if let Ok(meta) = self.root.symlink_metadata(rel) {
            if meta.file_type().is_symlink() {
                // Replace the link itself; never write through it.
                self.root.remove_file(rel).map_err(|e| self.map_err(e, "replacing", &path))?;
            } else if meta.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "sandbox {}: a write would replace the directory {path} with a file",
                    self.id
                )));
            }
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| Error::io("reading the upload", e))?
                .ok_or_else(|| Error::InvalidArgument(format!("symlink {path} has no target")))?;
            return self.root.symlink_contents(target, rel).map_err(|e| self.map_err(e, "linking", &path));
        }
        if !kind.is_file() {
            return Ok(()); // devices and fifos are not carried
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        let mut f = self.root.open_with(rel, &opts).map_err(|e| self.map_err(e, "writing", &path))?;
        io::copy(entry, &mut f).map_err(|e| match e.get_ref().is_some_and(|i| i.is::<Error>()) {
            true => Error::from_stream("writing", e),
            false => self.map_err(e, "writing", &path),
        })?;
        f.set_permissions(cap_std::fs::Permissions::from_mode(mode))
            .map_err(|e| self.map_err(e, "setting the mode of", &path))?;
        Ok(())
    }

    /// Opens a regular file (links followed inside the sandbox) of at most `limit` bytes. Anything
    /// else is refused before it is read: reading a FIFO would block until a writer appears.
    fn open_regular(&self, path: &SandboxPath, limit: u64) -> Result<(std::fs::File, u64)> {
        let rel = Self::rel(path);
        // Open first (non-blocking, so a FIFO cannot block the open), then check what was opened:
        // a check before the open could be answered by a file that a command swaps for a FIFO
        // before the open, which then blocked a thread forever.
        let mut opts = cap_std::fs::OpenOptions::new();
        opts.read(true);
        cap_std::fs::OpenOptionsExt::custom_flags(&mut opts, nix::libc::O_NONBLOCK);
        let f = self.root.open_with(rel, &opts).map_err(|e| self.map_err(e, "reading", path))?;
        let meta = f.metadata().map_err(|e| self.map_err(e, "reading", path))?;
        if meta.is_dir() {
            return Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", self.id)));
        }
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!("sandbox {}: {path} is not a regular file", self.id)));
        }
        check_file_size(&self.id, path, meta.len(), limit)?;
        Ok((f.into_std(), meta.len()))
    }

    /// Appends the tree under `dir` (relative name `prefix`) to `w`, links kept as links.
    fn pack<W: Write>(&self, dir: &Dir, prefix: &str, tar: &mut tar::Builder<W>, at: &SandboxPath) -> Result<()> {
        let mut entries: Vec<_> = dir
            .entries()
            .map_err(|e| self.map_err(e, "listing", at))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| self.map_err(e, "listing", at))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let here = at.join(&name)?;
            let ft = entry.file_type().map_err(|e| self.map_err(e, "reading", &here))?;
            let mut h = tar::Header::new_gnu();
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(|e| Error::io("packing", e))?;
                let sub = dir.open_dir(&name).map_err(|e| self.map_err(e, "opening", &here))?;
                self.pack(&sub, &format!("{rel}/"), tar, &here)?;
            } else if ft.is_symlink() {
                let target = dir.read_link_contents(&name).map_err(|e| self.map_err(e, "reading", &here))?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, &rel, target).map_err(|e| Error::io("packing", e))?;
            } else if ft.is_file() {
                let f = dir.open(&name).map_err(|e| self.map_err(e, "reading", &here))?;
                let meta = f.metadata().map_err(|e| self.map_err(e, "reading", &here))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(meta.permissions().mode() & 0o7777);
                h.set_size(meta.len());
                // Streamed: the entry's bytes go out as they are read.
                tar.append_data(&mut h, &rel, ExactLen::new(f, meta.len())).map_err(|e| Error::io("packing", e))?;
            }
        }
        Ok(())
    }

    fn upload_blocking(&self, tar: impl Read) -> Result<()> {
        let mut ar = tar::Archive::new(tar);
        for entry in ar.entries().map_err(|e| Error::from_stream("reading the upload", e))? {
            let mut entry = entry.map_err(|e| Error::from_stream("reading the upload", e))?;
            self.write_entry(&mut entry)?;
        }
        Ok(())
    }

    fn download_blocking(&self, path: &SandboxPath, out: impl Write) -> Result<()> {
        let dir = self.root.open_dir(Self::rel(path)).map_err(|e| self.map_err(e, "opening", path))?;
        let mut tar = tar::Builder::new(out);
        self.pack(&dir, "./", &mut tar, path)?;
        tar.into_inner().map(drop).map_err(|e| Error::io("packing", e))
    }
}

#[async_trait]
impl Engine for LocalEngine {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    fn isolation(&self) -> Isolation {
        Isolation::Process
    }

    fn resource_id(&self) -> String {
        self.fs.root_path.display().to_string()
    }

    fn ports(&self) -> Vec<PortMapping> {
        self.ports.iter().map(|&p| PortMapping::new(p, p)).collect()
    }

    async fn start_exec(&self, spec: ExecSpec) -> Result<Box<dyn RunningExec>> {
        let fs = &self.fs;
        // Opening the directory through the handle proves it is inside the sandbox.
        match fs.root.open_dir(LocalFs::rel(&spec.cwd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::not_found(&fs.id, "working directory", spec.cwd.to_string()))
            }
            Err(e) => return Err(fs.map_err(e, "entering", &spec.cwd)),
        }
        let run = exec::LocalExec::start(&fs.id, &fs.root_path, &fs.root, fs.cgroup.as_ref(), spec)?;
        Ok(Box::new(run))
    }

    async fn upload_tar(&self, tar: ByteStream) -> Result<()> {
        let fs = self.fs.clone();
        stream::consume(tar, "local file work", move |r| fs.upload_blocking(r)).await
    }

    async fn download_tar(&self, path: &SandboxPath) -> Result<ByteStream> {
        // Opened here, so a missing directory is an error of this call, not of the stream.
        let p = path.clone();
        self.blocking(move |fs| fs.root.open_dir(LocalFs::rel(&p)).map(drop).map_err(|e| fs.map_err(e, "opening", &p)))
            .await?;
        let (fs, path) = (self.fs.clone(), path.clone());
        Ok(stream::produce(move |out| fs.download_blocking(&path, out)))
    }

    async fn read_file(&self, path: &SandboxPath, limit: u64) -> Result<FileReader> {
        let path = path.clone();
        let (file, size) = self.blocking(move |fs| fs.open_regular(&path, limit)).await?;
        Ok(FileReader::new(size, Box::pin(tokio::fs::File::from_std(file).take(size))))
    }

    async fn stat(&self, path: &SandboxPath) -> Result<Option<EntryKind>> {
        let fs = &self.fs;
        match fs.root.symlink_metadata(LocalFs::rel(path)) {
            Ok(m) => Ok(Some(kind_of(m.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fs.map_err(e, "checking", path)),
        }
    }

    async fn remove(&self, path: &SandboxPath) -> Result<()> {
        let path = path.clone();
        self.blocking(move |fs| {
            let rel = LocalFs::rel(&path);
            let meta = fs.root.symlink_metadata(rel).map_err(|e| fs.map_err(e, "deleting", &path))?;
            if meta.is_dir() { fs.root.remove_dir_all(rel) } else { fs.root.remove_file(rel) }
                .map_err(|e| fs.map_err(e, "deleting", &path))
        })
        .await
    }

    async fn list_dir(&self, path: &SandboxPath) -> Result<Vec<DirEntry>> {
        let path = path.clone();
        self.blocking(move |fs| {
            let mut out = Vec::new();
            for entry in fs.root.read_dir(LocalFs::rel(&path)).map_err(|e| fs.map_err(e, "listing", &path))? {
                let entry = entry.map_err(|e| fs.map_err(e, "listing", &path))?;
                let ft = entry.file_type().map_err(|e| fs.map_err(e, "listing", &path))?;
                let size = if ft.is_dir() { 0 } else { entry.metadata().map(|m| m.len()).unwrap_or(0) };
                out.push(DirEntry { name: entry.file_name().to_string_lossy().into_owned(), kind: kind_of(ft), size });
                check_list_len(&fs.id, &path, out.len())?;
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn fork(&self, new_id: &str) -> Result<Box<dyn Engine>> {
        let new_id = new_id.to_string();
        let child = self
            .blocking(move |fs| {
                // Through the filesystem, file to file: nothing of the tree is held in memory.
                let child = LocalFs::make(&new_id, &fs.owner)?;
                if let Err(e) = copy::copy_tree(&fs.root, &child.root) {
                    let _ = std::fs::remove_dir_all(&child.home);
                    return Err(fs.map_err(e, "copying for a fork", &SandboxPath::root()));
                }
                Ok(child)
            })
            .await?;
        Ok(Box::new(LocalEngine { fs: Arc::new(child), ports: self.ports.clone() }))
    }

    async fn snapshot(&self, record: crate::snapshot::Record) -> Result<crate::snapshot::Snapshot> {
        self.blocking(move |fs| fs.take_snapshot(record)).await
    }

    async fn stop(&self) -> Result<()> {
        // The directory is the filesystem and stays; every process of the sandbox is ended.
        self.blocking(|fs| {
            if let Some(cg) = &fs.cgroup {
                cg.kill();
            }
            exec::kill_sandbox_processes(&fs.id);
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        // Processes a command left running (`nohup ... &`) carry the sandbox's id: stop them first.
        self.blocking(|fs| {
            if let Some(cg) = &fs.cgroup {
                cg.kill_and_remove();
            }
            exec::kill_sandbox_processes(&fs.id);
            Ok(())
        })
        .await?;
        self.blocking(|fs| match std::fs::remove_dir_all(&fs.home) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", fs.home.display()), e))
            }
            _ => Ok(()),
        })
        .await
    }
}

fn kind_of(ft: cap_std::fs::FileType) -> EntryKind {
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

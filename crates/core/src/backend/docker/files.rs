//! Files in a docker sandbox through the archive API (one tar per upload or download), plus the
//! two operations the API lacks, delete and list, as one exec each.

use std::io::Read;

use bollard::body_full;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{describe, status, wait_exit_code, DockerEngine};
use crate::backend::{parse_stat_lines, DirEntry, EntryKind};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;

/// How many symlinks a read follows before it gives up (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Extracts a tar rooted at `/` in one request.
pub(super) async fn upload(e: &DockerEngine, tar: Vec<u8>) -> Result<()> {
    let opts = UploadToContainerOptionsBuilder::default().path("/").no_overwrite_dir_non_dir("true").build();
    e.docker.upload_to_container(&e.container, Some(opts), body_full(tar.into())).await.map_err(|err| {
        match status(&err) {
            Some(400 | 500) if ["overwrite", "not a directory"].iter().any(|m| describe(&err).contains(m)) => {
                Error::InvalidArgument(format!(
                    "sandbox {}: a write would replace a directory with a file or a file with a directory: {}",
                    e.id,
                    describe(&err)
                ))
            }
            _ => e.err("uploading files", err),
        }
    })
}

async fn get_archive(e: &DockerEngine, path: &str) -> std::result::Result<Vec<u8>, bollard::errors::Error> {
    let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
    e.docker
        .download_from_container(&e.container, Some(opts))
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
}

/// A tar of the directory at `path` with entries relative to it.
pub(super) async fn download(e: &DockerEngine, path: &SandboxPath) -> Result<Vec<u8>> {
    let spec = format!("{}/.", path.as_str().trim_end_matches('/'));
    get_archive(e, &spec).await.map_err(|err| match status(&err) {
        Some(404) => Error::not_found(&e.id, "directory", path.to_string()),
        _ => e.err("downloading files", err),
    })
}

/// The bytes of a regular file, following symlinks inside the sandbox.
pub(super) async fn read_file(e: &DockerEngine, path: &SandboxPath) -> Result<Vec<u8>> {
    let mut current = path.clone();
    for _ in 0..MAX_SYMLINKS {
        // A directory would arrive as a tar of everything below it: refuse it from one HEAD request.
        if stat(e, &current).await? == Some(EntryKind::Dir) {
            return Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", e.id)));
        }
        let tar = get_archive(e, current.as_str()).await.map_err(|err| match status(&err) {
            Some(404) => Error::not_found(&e.id, "file", path.to_string()),
            _ => e.err("reading a file", err),
        })?;
        let mut ar = tar::Archive::new(&tar[..]);
        let mut entries = ar.entries().map_err(|err| Error::io("reading the file archive", err))?;
        let Some(entry) = entries.next() else {
            return Err(Error::not_found(&e.id, "file", path.to_string()));
        };
        let mut entry = entry.map_err(|err| Error::io("reading the file archive", err))?;
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let mut buf = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut buf).map_err(|err| Error::io("reading the file archive", err))?;
            return Ok(buf);
        }
        if kind.is_dir() {
            return Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", e.id)));
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|err| Error::io("reading the file archive", err))?
                .ok_or_else(|| e.err_msg("reading a symlink", "link without a target"))?;
            let base = current.parent().unwrap_or_else(SandboxPath::root);
            current = SandboxPath::resolve(&base, &target.to_string_lossy())?;
            continue;
        }
        return Err(Error::InvalidArgument(format!("sandbox {}: {path} is not a regular file", e.id)));
    }
    Err(Error::invalid_path(path.to_string(), "too many levels of symbolic links"))
}

/// What is at `path`, from one HEAD request.
pub(super) async fn stat(e: &DockerEngine, path: &SandboxPath) -> Result<Option<EntryKind>> {
    let opts = ContainerArchiveInfoOptionsBuilder::default().path(path.as_str()).build();
    match e.docker.get_container_archive_info(&e.container, Some(opts)).await {
        Ok(s) => Ok(Some(go_file_mode_kind(s.file_mode))),
        Err(err) if status(&err) == Some(404) => Ok(None),
        Err(err) => Err(e.err("checking a path", err)),
    }
}

/// The kind of entry a Go `os.FileMode` (as the archive API reports it) describes.
fn go_file_mode_kind(mode: u32) -> EntryKind {
    const MODE_DIR: u32 = 1 << 31;
    const MODE_SYMLINK: u32 = 1 << 27;
    const MODE_TYPE: u32 = MODE_DIR | MODE_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
    if mode & MODE_DIR != 0 {
        EntryKind::Dir
    } else if mode & MODE_SYMLINK != 0 {
        EntryKind::Symlink
    } else if mode & MODE_TYPE == 0 {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

/// Runs a short helper command (argv, no shell parsing of paths) and returns exit code and output.
async fn helper(e: &DockerEngine, op: &str, argv: Vec<String>) -> Result<(i64, String, String)> {
    let config = ExecConfig {
        cmd: Some(argv),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        working_dir: Some("/".into()),
        ..Default::default()
    };
    let exec = e.docker.create_exec(&e.container, config).await.map_err(|err| e.err(op, err))?;
    let mut out = Vec::new();
    let mut err_out = Vec::new();
    if let StartExecResults::Attached { mut output, .. } =
        e.docker.start_exec(&exec.id, None).await.map_err(|err| e.err(op, err))?
    {
        while let Some(frame) = output.next().await {
            match frame.map_err(|err| e.err(op, err))? {
                bollard::container::LogOutput::StdOut { message } => out.extend_from_slice(&message),
                bollard::container::LogOutput::StdErr { message } => err_out.extend_from_slice(&message),
                _ => {}
            }
        }
    }
    let code = wait_exit_code(&e.docker, &exec.id).await.map_err(|err| e.err(op, err))?;
    Ok((code.unwrap_or(-1), String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err_out).into_owned()))
}

/// Removes `path` recursively with one `rm -rf` exec.
pub(super) async fn remove(e: &DockerEngine, path: &SandboxPath) -> Result<()> {
    let (code, _, err) =
        helper(e, "deleting a path", vec!["rm".into(), "-rf".into(), "--".into(), path.to_string()]).await?;
    if code != 0 {
        return Err(e.err_msg("deleting a path", format!("rm -rf {path} exited {code}: {}", err.trim())));
    }
    Ok(())
}

/// Lists a directory with one exec: `stat` prints raw mode, size and name for each entry.
pub(super) async fn list_dir(e: &DockerEngine, path: &SandboxPath) -> Result<Vec<DirEntry>> {
    const SCRIPT: &str = "cd -- \"$1\" || exit 2; for f in * .*; do case \"$f\" in .|..) continue;; esac; \
        if [ -e \"$f\" ] || [ -L \"$f\" ]; then stat -c '%f %s %n' -- \"$f\" || exit 3; fi; done";
    let argv = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into(), "sh".into(), path.to_string()];
    let (code, out, err) = helper(e, "listing a directory", argv).await?;
    if code != 0 {
        return Err(e.err_msg("listing a directory", format!("listing {path} exited {code}: {}", err.trim())));
    }
    let mut entries = parse_stat_lines(&out);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

impl DockerEngine {
    fn err_msg(&self, op: &str, message: impl std::fmt::Display) -> Error {
        Error::engine(&self.id, op, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_file_modes_map_to_kinds() {
        assert_eq!(go_file_mode_kind(0o644), EntryKind::File);
        assert_eq!(go_file_mode_kind(0x8000_0000 | 0o755), EntryKind::Dir);
        assert_eq!(go_file_mode_kind((1 << 27) | 0o777), EntryKind::Symlink);
        assert_eq!(go_file_mode_kind((1 << 25) | 0o644), EntryKind::Other);
    }

    #[test]
    fn stat_lines_parse_names_with_spaces() {
        let e = parse_stat_lines("81a4 5 a b.txt\n41ed 4096 dir\na1ff 7 link\n");
        assert_eq!(e[0], DirEntry { name: "a b.txt".into(), kind: EntryKind::File, size: 5 });
        assert_eq!(e[1].kind, EntryKind::Dir);
        assert_eq!(e[2].kind, EntryKind::Symlink);
    }
}

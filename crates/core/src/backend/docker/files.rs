//! Files in a docker sandbox through the archive API (one tar per upload or download, streamed
//! both ways), plus the two operations the API lacks, delete and list, as one bounded exec each.

use std::sync::{Arc, Mutex};

use bollard::body_try_stream;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{describe, status, wait_exit_code, DockerEngine};
use crate::backend::{
    check_file_size, check_list_len, helper_timeout, parse_stat_lines, DirEntry, EntryKind, HELPER_OUTPUT_MAX,
};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
use crate::stream::{ByteStream, FileReader};
use crate::tarball::first_entry;

/// How many symlinks a read follows before it gives up (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Extracts a tar rooted at `/` in one request, sent as it is read.
pub(super) async fn upload(e: &DockerEngine, tar: ByteStream) -> Result<()> {
    let opts = UploadToContainerOptionsBuilder::default().path("/").no_overwrite_dir_non_dir("true").build();
    // The request fails when its body does; the body's own error is the one worth reporting.
    let body_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let seen = body_error.clone();
    let body = ReaderStream::new(tar).inspect_err(move |err| {
        let mut slot = seen.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(std::io::Error::new(err.kind(), err.to_string()));
        }
    });
    let t = std::time::Instant::now();
    let sent = e.docker.upload_to_container(&e.container, Some(opts), body_try_stream(body)).await;
    tracing::debug!(sandbox = %e.id, ms = t.elapsed().as_millis() as u64, "docker: tar uploaded");
    if let Some(err) = body_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Error::from_stream(format!("sandbox {}: sending files", e.id), err));
    }
    sent.map_err(|err| match status(&err) {
        Some(400 | 500) if ["overwrite", "not a directory"].iter().any(|m| describe(&err).contains(m)) => {
            Error::InvalidArgument(format!(
                "sandbox {}: a write would replace a directory with a file or a file with a directory: {}",
                e.id,
                describe(&err)
            ))
        }
        _ => e.err("uploading files", err),
    })
}

/// The archive of `path` as a stream; the engine's refusal (a 404) comes back as the error of
/// this call, read from the stream's first item, not as a broken stream later.
async fn get_archive(e: &DockerEngine, path: &str) -> std::result::Result<ByteStream, bollard::errors::Error> {
    let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
    let mut chunks = e.docker.download_from_container(&e.container, Some(opts));
    let first = match chunks.next().await {
        None => Bytes::new(),
        Some(first) => first?,
    };
    let sandbox = e.id.clone();
    let rest: BoxStream<'static, std::io::Result<Bytes>> = futures_util::stream::once(async move { Ok(first) })
        .chain(chunks.map_err(move |err| Error::engine(&sandbox, "downloading files", describe(&err)).into_io()))
        .boxed();
    Ok(Box::pin(StreamReader::new(rest)))
}

/// A tar of the directory at `path` with entries relative to it, as a stream.
pub(super) async fn download(e: &DockerEngine, path: &SandboxPath) -> Result<ByteStream> {
    let spec = format!("{}/.", path.as_str().trim_end_matches('/'));
    get_archive(e, &spec).await.map_err(|err| match status(&err) {
        Some(404) => Error::not_found(&e.id, "directory", path.to_string()),
        _ => e.err("downloading files", err),
    })
}

/// A regular file, following symlinks inside the sandbox, as a stream of its bytes. Its size is
/// checked against `limit` from a HEAD request before anything is downloaded, and again from the
/// archive's header (the file may have grown in between).
pub(super) async fn read_file(e: &DockerEngine, path: &SandboxPath, limit: u64) -> Result<FileReader> {
    let mut current = path.clone();
    for _ in 0..MAX_SYMLINKS {
        // A directory would arrive as a tar of everything below it: refuse it from one HEAD request.
        match stat_sized(e, &current).await? {
            Some((EntryKind::Dir, _)) => {
                return Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", e.id)))
            }
            Some((EntryKind::File, size)) => check_file_size(&e.id, path, size, limit)?,
            _ => {}
        }
        let mut tar = get_archive(e, current.as_str()).await.map_err(|err| match status(&err) {
            Some(404) => Error::not_found(&e.id, "file", path.to_string()),
            Some(500) if describe(&err).contains(ENGINE_LINK_LOOP) => link_loop(path),
            _ => e.err("reading a file", err),
        })?;
        let entry = first_entry(&mut tar)
            .await
            .map_err(|err| Error::from_stream("reading the file archive", err))?
            .ok_or_else(|| Error::not_found(&e.id, "file", path.to_string()))?;
        if entry.kind.is_file() {
            check_file_size(&e.id, path, entry.size, limit)?;
            return Ok(FileReader::new(entry.size, Box::pin(tar.take(entry.size))));
        }
        if entry.kind.is_dir() {
            return Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", e.id)));
        }
        if entry.kind.is_symlink() {
            let target = entry.link.ok_or_else(|| e.err_msg("reading a symlink", "link without a target"))?;
            let base = current.parent().unwrap_or_else(SandboxPath::root);
            current = SandboxPath::resolve(&base, &target.to_string_lossy())?;
            continue;
        }
        return Err(Error::InvalidArgument(format!("sandbox {}: {path} is not a regular file", e.id)));
    }
    Err(link_loop(path))
}

/// How the engine words a path it cannot resolve because of a symlink loop (`evalSymlinksInScope`).
const ENGINE_LINK_LOOP: &str = "too many links";

fn link_loop(path: &SandboxPath) -> Error {
    Error::invalid_path(path.to_string(), "too many levels of symbolic links")
}

/// What is at `path`, from one HEAD request.
pub(super) async fn stat(e: &DockerEngine, path: &SandboxPath) -> Result<Option<EntryKind>> {
    Ok(stat_sized(e, path).await?.map(|(kind, _)| kind))
}

/// What is at `path` and its size, from one HEAD request (a final symlink is not followed).
async fn stat_sized(e: &DockerEngine, path: &SandboxPath) -> Result<Option<(EntryKind, u64)>> {
    let opts = ContainerArchiveInfoOptionsBuilder::default().path(path.as_str()).build();
    match e.docker.get_container_archive_info(&e.container, Some(opts)).await {
        Ok(s) => Ok(Some((go_file_mode_kind(s.file_mode), s.size.max(0) as u64))),
        Err(err) if status(&err) == Some(404) => Ok(None),
        // The engine resolves even a final symlink here, and answers a loop with a bare 500 (a HEAD
        // has no body to say why): a link loop a command made could then be neither seen nor
        // deleted. `lstat` in the container says what is there.
        Err(err) if status(&err) == Some(500) => lstat(e, path).await,
        Err(err) => Err(e.err("checking a path", err)),
    }
}

/// What is at `path` (a final symlink not followed) from one bounded `stat` exec.
async fn lstat(e: &DockerEngine, path: &SandboxPath) -> Result<Option<(EntryKind, u64)>> {
    let argv = vec!["stat".into(), "-c".into(), "%f %s %n".into(), "--".into(), path.to_string()];
    let (code, out, err) = helper(e, "checking a path", argv).await?;
    if code == 0 {
        if let Some(entry) = parse_stat_lines(&out).into_iter().next() {
            return Ok(Some((entry.kind, entry.size)));
        }
    }
    let why = err.to_ascii_lowercase();
    if why.contains("no such file") {
        Ok(None)
    } else if why.contains("loop") || why.contains("too many levels") {
        Err(link_loop(path))
    } else {
        Err(e.err_msg("checking a path", format!("stat {path} exited {code}: {}", err.trim())))
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

/// Most bytes of a helper's stderr kept for its error message.
const HELPER_STDERR_MAX: usize = 64 * 1024;

/// Runs a short helper command (argv, no shell parsing of paths) and returns exit code, stdout and
/// stderr. Bounded both ways: past the sandbox's timeout it is `TIMEOUT`, and stdout over
/// `HELPER_OUTPUT_MAX` is `TOO_LARGE` (a tool the sandbox replaced can sleep or print forever).
async fn helper(e: &DockerEngine, op: &str, argv: Vec<String>) -> Result<(i64, String, String)> {
    let timeout = e.spec.timeout;
    match tokio::time::timeout(timeout, helper_unbounded(e, op, argv.clone())).await {
        Ok(r) => r,
        Err(_) => Err(helper_timeout(&e.id, &argv, timeout)),
    }
}

async fn helper_unbounded(e: &DockerEngine, op: &str, argv: Vec<String>) -> Result<(i64, String, String)> {
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
                bollard::container::LogOutput::StdOut { message } => {
                    if out.len() + message.len() > HELPER_OUTPUT_MAX {
                        return Err(Error::too_large(
                            &e.id,
                            format!("the output of {op}"),
                            None,
                            HELPER_OUTPUT_MAX as u64,
                            "the helper printed more than any listing needs (was a tool in the image replaced?)",
                        ));
                    }
                    out.extend_from_slice(&message);
                }
                bollard::container::LogOutput::StdErr { message } => {
                    let room = HELPER_STDERR_MAX.saturating_sub(err_out.len());
                    err_out.extend_from_slice(&message[..message.len().min(room)]);
                }
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
    check_list_len(&e.id, path, entries.len())?;
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

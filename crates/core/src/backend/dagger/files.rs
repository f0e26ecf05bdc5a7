//! Files on Dagger, one engine operation each. In: the whole tar as one blob, extracted by the
//! image's `tar` in one exec (tar semantics, the same as the Docker archive API: directories that
//! exist keep their owner and mode, which copying a directory onto the rootfs would not promise).
//! Out: `tar | base64` or `base64` on stdout, because the File text API corrupts binary data.
//! Reads run on the latest state without waiting for a running mutation; their results are never
//! kept (so they may be served from the engine's cache: the state they read is immutable).

use base64::Engine as _;

use super::{run, script_argv, sdk, Inner};
use crate::backend::{parse_stat_lines, DirEntry, EntryKind};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;

/// What is at `$0`, not following a final symlink: one letter.
const STAT: &str = "if [ -L \"$0\" ]; then echo l; elif [ -d \"$0\" ]; then echo d; \
    elif [ -f \"$0\" ]; then echo f; elif [ -e \"$0\" ]; then echo o; else echo n; fi";

/// The bytes of the regular file at `$0` (symlinks followed), base64; special exit codes say why not.
const READ: &str = "if [ -d \"$0\" ]; then exit 21; fi; if [ ! -e \"$0\" ]; then exit 2; fi; \
    if [ ! -f \"$0\" ]; then exit 22; fi; base64 < \"$0\"";

/// A tar of the directory `$0`, entries relative to it, base64.
const DOWNLOAD: &str = "cd -- \"$0\" 2>/dev/null || exit 2; \
    { tar -cf - . || echo __DAGGER_SANDBOX_TAR_FAILED__ >&2; } | base64";

/// Extracts the staged tar `$0` at `/` and removes it.
const UPLOAD: &str = "tar -xf \"$0\" -C /; rc=$?; rm -f -- \"$0\"; exit $rc";

/// Removes `$0` recursively.
const REMOVE: &str = "rm -rf -- \"$0\"";

/// Mode, size and name of each entry of `$0` (the same listing as the docker backend).
const LIST: &str = "cd -- \"$0\" || exit 2; for f in * .*; do case \"$f\" in .|..) continue;; esac; \
    if [ -e \"$f\" ] || [ -L \"$f\" ]; then stat -c '%f %s %n' -- \"$f\" || exit 3; fi; done";

/// Decodes `base64` output (wrapped at 76 columns by busybox and coreutils).
pub(super) fn decode(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Whether a failed extraction was a file where a directory is needed, or the other way round.
pub(super) fn is_type_clash(stderr: &str) -> bool {
    ["Not a directory", "Is a directory", "File exists", "Cannot create directory", "can't create directory"]
        .iter()
        .any(|m| stderr.contains(m))
}

/// Extracts a tar rooted at `/` in one exec; on any failure nothing of it is kept.
pub(super) async fn upload(inner: &Inner, tar: Vec<u8>) -> Result<()> {
    inner.check_open()?;
    let op = "writing files";
    let mut guard = inner.chain.clone().lock_owned().await;
    inner.check_open()?;
    let (blob, _staged_on_host) = inner.host_file_id("upload.tar", tar).await?;
    let staged = format!("/.dagger-sandbox-upload-{}.tar", uuid::Uuid::new_v4().simple());
    let mut next = (*guard).clone();
    let ran = sdk(&inner.id, op, inner.opts.call_timeout, {
        let staged = staged.clone();
        async move {
            next.apply(1, |c| c.with_file(staged.clone(), blob)).await?;
            run(next.value().clone(), script_argv(UPLOAD, &[&staged])).await
        }
    })
    .await?;
    if ran.code != 0 {
        let why = ran.stderr.trim();
        if is_type_clash(why) {
            return Err(Error::InvalidArgument(format!(
                "sandbox {}: a write would replace a directory with a file or a file with a directory: {why}",
                inner.id
            )));
        }
        return Err(Error::engine(&inner.id, op, format!("tar exited {}: {why}", ran.code)));
    }
    guard.set_synced(ran.done.clone());
    inner.publish(ran.done);
    Ok(())
}

/// A tar of the directory at `path`, entries relative to it.
pub(super) async fn download(inner: &Inner, path: &SandboxPath) -> Result<Vec<u8>> {
    let ran = inner.helper("exporting a directory", DOWNLOAD, path.as_str()).await?;
    if ran.code == 2 {
        return Err(Error::not_found(&inner.id, "directory", path.to_string()));
    }
    if ran.code != 0 || ran.stderr.contains("__DAGGER_SANDBOX_TAR_FAILED__") {
        return Err(Error::engine(
            &inner.id,
            "exporting a directory",
            format!("tar of {path} failed (exit {}): {}", ran.code, ran.stderr.trim()),
        ));
    }
    decode(&ran.stdout)
        .map_err(|e| Error::engine(&inner.id, "exporting a directory", format!("bad base64 from the sandbox: {e}")))
}

/// The bytes of a regular file, byte for byte.
pub(super) async fn read_file(inner: &Inner, path: &SandboxPath) -> Result<Vec<u8>> {
    let ran = inner.helper("reading a file", READ, path.as_str()).await?;
    match ran.code {
        0 => decode(&ran.stdout)
            .map_err(|e| Error::engine(&inner.id, "reading a file", format!("bad base64 from the sandbox: {e}"))),
        2 => Err(Error::not_found(&inner.id, "file", path.to_string())),
        21 => Err(Error::InvalidArgument(format!("sandbox {}: {path} is a directory, not a file", inner.id))),
        22 => Err(Error::InvalidArgument(format!("sandbox {}: {path} is not a regular file", inner.id))),
        code => Err(Error::engine(
            &inner.id,
            "reading a file",
            format!("reading {path} exited {code}: {}", ran.stderr.trim()),
        )),
    }
}

/// What is at `path`, not following a final symlink.
pub(super) async fn stat(inner: &Inner, path: &SandboxPath) -> Result<Option<EntryKind>> {
    let ran = inner.helper("checking a path", STAT, path.as_str()).await?;
    parse_stat(ran.stdout.trim()).ok_or_else(|| {
        Error::engine(&inner.id, "checking a path", format!("unexpected answer {:?} {:?}", ran.stdout, ran.stderr))
    })
}

/// The answer of [`STAT`].
pub(super) fn parse_stat(letter: &str) -> Option<Option<EntryKind>> {
    Some(match letter {
        "l" => Some(EntryKind::Symlink),
        "d" => Some(EntryKind::Dir),
        "f" => Some(EntryKind::File),
        "o" => Some(EntryKind::Other),
        "n" => None,
        _ => return None,
    })
}

/// Removes `path` recursively (the caller has checked it exists: Dagger's own `withoutFile` would
/// silently ignore a missing path).
pub(super) async fn remove(inner: &Inner, path: &SandboxPath) -> Result<()> {
    inner.check_open()?;
    let op = "deleting a path";
    let mut guard = inner.chain.clone().lock_owned().await;
    inner.check_open()?;
    let ctr = guard.value().clone();
    let ran = sdk(&inner.id, op, inner.opts.call_timeout, run(ctr, script_argv(REMOVE, &[path.as_str()]))).await?;
    if ran.code != 0 {
        return Err(Error::engine(&inner.id, op, format!("rm -rf {path} exited {}: {}", ran.code, ran.stderr.trim())));
    }
    guard.set_synced(ran.done.clone());
    inner.publish(ran.done);
    Ok(())
}

/// The entries of a directory, sorted by name.
pub(super) async fn list_dir(inner: &Inner, path: &SandboxPath) -> Result<Vec<DirEntry>> {
    let ran = inner.helper("listing a directory", LIST, path.as_str()).await?;
    if ran.code == 2 {
        return Err(Error::not_found(&inner.id, "directory", path.to_string()));
    }
    if ran.code != 0 {
        return Err(Error::engine(
            &inner.id,
            "listing a directory",
            format!("listing {path} exited {}: {}", ran.code, ran.stderr.trim()),
        ));
    }
    let mut entries = parse_stat_lines(&ran.stdout);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarball::TarWriter;

    fn sp(s: &str) -> SandboxPath {
        SandboxPath::resolve(&SandboxPath::root(), s).unwrap()
    }

    #[test]
    fn wrapped_base64_decodes_byte_exact() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let wrapped: String =
            b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap().to_string() + "\n").collect();
        assert_eq!(decode(&wrapped).unwrap(), data);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn a_staged_write_batch_is_one_tar_blob_that_round_trips() {
        // What upload sends: the batch as one tar, base64 in one blob argument.
        let mut w = TarWriter::new();
        w.file(&sp("/workspace/a.txt"), b"a", 0o644).unwrap();
        w.file(&sp("/workspace/bin/run.sh"), b"#!/bin/sh\n", 0o755).unwrap();
        w.file(&sp("/workspace/blob.bin"), &[0, 0xff, 0xfe, b'\n'], 0o600).unwrap();
        let tar = w.finish().unwrap();
        let wire = base64::engine::general_purpose::STANDARD.encode(&tar);
        let back = decode(&wire).unwrap();
        let mut ar = tar::Archive::new(&back[..]);
        let got: Vec<(String, u32, Vec<u8>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (e.path().unwrap().display().to_string(), e.header().mode().unwrap(), data)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("workspace/a.txt".to_string(), 0o644, b"a".to_vec()),
                ("workspace/bin/run.sh".to_string(), 0o755, b"#!/bin/sh\n".to_vec()),
                ("workspace/blob.bin".to_string(), 0o600, vec![0, 0xff, 0xfe, b'\n']),
            ]
        );
    }

    #[test]
    fn stat_answers_map_to_kinds_and_garbage_is_refused() {
        assert_eq!(parse_stat("d"), Some(Some(EntryKind::Dir)));
        assert_eq!(parse_stat("l"), Some(Some(EntryKind::Symlink)));
        assert_eq!(parse_stat("n"), Some(None));
        assert_eq!(parse_stat("sh: not found"), None);
    }

    #[test]
    fn stat_lines_parse_names_with_spaces() {
        let e = parse_stat_lines("81a4 5 a b.txt\n41ed 4096 dir\na1ff 7 link\n1000 0 fifo\n");
        assert_eq!(e[0], DirEntry { name: "a b.txt".into(), kind: EntryKind::File, size: 5 });
        assert_eq!(e[1].kind, EntryKind::Dir);
        assert_eq!(e[2].kind, EntryKind::Symlink);
        assert_eq!(e[3].kind, EntryKind::Other);
    }

    #[test]
    fn tar_type_clashes_are_recognised_from_busybox_and_gnu() {
        assert!(is_type_clash("tar: can't open 'workspace/keep.txt/child': Not a directory"));
        assert!(is_type_clash("tar: workspace/keep.txt/child: Cannot open: Not a directory"));
        assert!(!is_type_clash("tar: short read"));
    }
}

//! Where the agent binary comes from and how it gets into a sandbox.
//!
//! Found, in order: `DAGGER_SANDBOX_AGENT` (a path, or `off`/`0`/`false` to never use the agent);
//! `dagger-sandbox-agent` beside the running executable (or one directory up, for test binaries in
//! `target/*/deps`); the static build of this workspace (`scripts/agent-build.sh` writes
//! `target/agent/x86_64-unknown-linux-gnu/{debug,release}/dagger-sandbox-agent`). A binary found
//! on its own must be a static ELF for this machine's architecture (a dynamic one would not run in
//! a musl or distroless image); a path named in the variable is used as it is.
//!
//! It is bind-mounted read-only at [`AGENT_PATH`] when the container is created: nothing is
//! copied, the image is untouched, the sandbox cannot change it, and a fork (a commit) does not
//! carry it. Beside it, a host directory of the sandbox's own (mode 0711, see [`socket_dir_of`])
//! is mounted read-only at `/.dagger-sandbox/run`, where the host listens on a Unix socket the
//! agent connects to (see `link`). That needs an engine that sees this machine's files: with a `tcp://` or `ssh://`
//! `DOCKER_HOST` the agent is not used.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bollard::models::{Mount, MountType};
pub(crate) use dagger_sandbox_agent::AGENT_PATH;

/// The variable that names the agent binary or turns the agent off.
pub const AGENT_VAR: &str = "DAGGER_SANDBOX_AGENT";
/// The binary's file name.
const BINARY: &str = "dagger-sandbox-agent";

/// Whether `DAGGER_SANDBOX_AGENT` turns the agent off.
pub(crate) fn turned_off() -> bool {
    std::env::var(AGENT_VAR).is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false"))
}

/// The agent binary to mount, or why there is none.
pub(crate) fn find() -> Result<PathBuf, String> {
    if let Ok(v) = std::env::var(AGENT_VAR) {
        match v.trim() {
            "" => {}
            "off" | "0" | "false" => return Err(format!("{AGENT_VAR}={v} turns it off")),
            path => {
                let p = PathBuf::from(path);
                return if p.is_absolute() && p.is_file() {
                    Ok(p)
                } else {
                    Err(format!("{AGENT_VAR}={path} is not an absolute path to a file"))
                };
            }
        }
    }
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty() && !h.starts_with("unix://")) {
        return Err(format!("the Docker engine at {host} cannot see this machine's files to mount the agent"));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(BINARY));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(BINARY));
            }
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/agent/x86_64-unknown-linux-gnu");
    candidates.push(built.join("debug").join(BINARY));
    candidates.push(built.join("release").join(BINARY));
    candidates.into_iter().find(|p| is_static_elf(p)).ok_or_else(|| {
        format!(
            "no static {BINARY} beside this program or in target/agent (build it with scripts/agent-build.sh, or \
             name it with {AGENT_VAR})"
        )
    })
}

/// The read-only bind mount that puts `binary` at [`AGENT_PATH`].
pub(crate) fn mount(binary: &Path) -> Mount {
    Mount {
        target: Some(AGENT_PATH.into()),
        source: Some(binary.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The host directory of sandbox `id`'s socket transport:
/// `<temp dir>/dagger-sandbox-agent-<uid>/<id>`, under a private (0700, checked) parent. Named by the
/// sandbox, so a process that takes the sandbox back finds it, and whoever closes it removes it.
/// It must live as long as the container: the engine's archive calls fail on a container whose
/// bind-mount source is gone.
pub(crate) fn socket_dir_of(id: &str) -> PathBuf {
    crate::private_dir::per_user(&std::env::temp_dir(), "dagger-sandbox-agent").join(id)
}

/// Makes sandbox `id`'s socket directory (mode 0711: the image's user may search it, nobody may
/// list it) and its read-only mount at [`super::link::SOCKET_DIR`]; `None` where it cannot be
/// made (the stdio transport serves).
pub(crate) fn socket_dir(id: &str) -> Option<(PathBuf, Mount)> {
    let dir = socket_dir_of(id);
    crate::private_dir::ensure_private_dir(dir.parent()?).ok()?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    if !std::fs::symlink_metadata(&dir).ok()?.is_dir() {
        return None;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).ok()?;
    let mount = Mount {
        target: Some(super::link::SOCKET_DIR.into()),
        source: Some(dir.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    };
    Some((dir, mount))
}

/// Sandbox `id`'s socket directory when it is there (a sandbox taken back on this machine).
pub(crate) fn existing_socket_dir(id: &str) -> Option<PathBuf> {
    let dir = socket_dir_of(id);
    crate::private_dir::check_private_dir(dir.parent()?).ok()?;
    std::fs::symlink_metadata(&dir).ok()?.is_dir().then_some(dir)
}

/// Removes sandbox `id`'s socket directory, once its container is gone.
pub(crate) fn remove_socket_dir(id: &str) {
    let _ = std::fs::remove_dir_all(socket_dir_of(id));
}

/// Whether `mount` is one of the agent's (to leave it out when the engine refuses it).
pub(crate) fn is_agent_mount(mount: &Mount) -> bool {
    matches!(mount.target.as_deref(), Some(t) if t == AGENT_PATH || t == super::link::SOCKET_DIR)
}

/// Logs why the agent is not used, at warn level the first time each reason is seen in this
/// process and at debug level after (a hundred sandboxes need not say it a hundred times).
pub(crate) fn note_unused(sandbox: &str, why: &str) {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let first = !seen.iter().any(|s| s == why);
    if first && seen.len() < 64 {
        seen.push(why.to_string());
    }
    drop(seen);
    if first {
        tracing::warn!(sandbox, "the in-sandbox agent is not used ({why}); commands and files use the Engine API");
    } else {
        tracing::debug!(sandbox, "the in-sandbox agent is not used ({why})");
    }
}

/// Whether `path` is an ELF executable for this machine's architecture without a program
/// interpreter (statically linked).
fn is_static_elf(path: &Path) -> bool {
    let mut head = vec![0u8; 4096];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    static_elf(&head[..n])
}

/// [`is_static_elf`] on the first bytes of a file (64-bit little-endian ELF only).
fn static_elf(head: &[u8]) -> bool {
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    const PT_INTERP: u32 = 3;
    let want = if cfg!(target_arch = "x86_64") {
        EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        EM_AARCH64
    } else {
        return false;
    };
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return false;
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
    if u16_at(18) != want {
        return false;
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56) as usize);
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        at + 4 <= head.len() && u32_at(at) != PT_INTERP
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_static_elf_of_this_architecture_is_taken() {
        // This test binary is dynamically linked: it has a program interpreter.
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me), "{} taken as static", me.display());
        assert!(!static_elf(b"#!/bin/sh\necho hi\n"));
        assert!(!is_static_elf(Path::new("/nonexistent/agent")));
    }
}

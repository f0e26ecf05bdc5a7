//! Who owns a sandbox's engine resources, written on them as labels, and whether this process can
//! tell that owner is gone: only then may a cleaner remove what it left behind.
//!
//! A process owner is `pid@boot-id@pidns@host`: the pid means something only inside its PID
//! namespace (`pidns`, the inode of `/proc/self/ns/pid`) on one boot of one machine (`host`, the
//! hostname and `/etc/machine-id`). A process in a container that shares the Docker socket, or on
//! another machine sharing `DOCKER_HOST`, has another namespace or host, so its pid cannot be looked
//! up here and its resources are left alone. Labels written before this format (`pid@boot-id`)
//! carry no namespace, so they are left alone too (see docs/configuration.md, "Orphan cleanup").

use std::path::Path;
use std::sync::OnceLock;

/// Label on every engine resource this library creates (value `1`).
pub const LABEL_MANAGED: &str = "dev.dagger-sandbox.managed";
/// Label naming the sandbox id a resource belongs to.
pub const LABEL_SANDBOX: &str = "dev.dagger-sandbox.sandbox";
/// Label naming the owner: `pid@boot-id@pidns@host` for a process, `daemon:<state dir>` for a daemon.
pub const LABEL_OWNER: &str = "dev.dagger-sandbox.owner";
/// Label naming the machine that made a container or image ([`host_id`]), so a daemon's sweep on a
/// shared `DOCKER_HOST` never removes what a daemon with the same state dir path on another machine made.
pub const LABEL_HOST: &str = "dev.dagger-sandbox.host";

/// Owner labels with this prefix belong to a daemon, which reconciles them itself on start.
pub const DAEMON_OWNER_PREFIX: &str = "daemon:";

/// What this process can say about the owner of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerStatus {
    /// The owning process runs (or its pid was reused: kept, to be safe).
    Alive,
    /// The owning process is gone: this machine rebooted since, or no process has its pid in this
    /// PID namespace. Only these resources are orphans.
    Dead,
    /// A daemon owns it; its daemon reconciles it.
    Daemon,
    /// Made on another machine sharing the engine: its process cannot be looked up here.
    OtherHost,
    /// Made in another PID namespace of this machine (a container with the Docker socket).
    OtherPidNamespace,
    /// No owner, an unknown format, or the old `pid@boot-id` format that names no PID namespace.
    Unknown,
}

impl OwnerStatus {
    /// The status as a stable string (`alive`, `dead`, `daemon`, `other_host`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            OwnerStatus::Alive => "alive",
            OwnerStatus::Dead => "dead",
            OwnerStatus::Daemon => "daemon",
            OwnerStatus::OtherHost => "other_host",
            OwnerStatus::OtherPidNamespace => "other_pid_namespace",
            OwnerStatus::Unknown => "unknown",
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Keeps an identity part free of the `@` separator and of anything a label should not hold.
fn clean(part: &str) -> String {
    part.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| clean(&read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_else(|| "unknown".into())))
}

/// The inode of this process's PID namespace (`pid:[4026531836]` -> `4026531836`).
fn pid_namespace() -> &'static str {
    static NS: OnceLock<String> = OnceLock::new();
    NS.get_or_init(|| {
        let link = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
        let inode = link.trim_start_matches("pid:[").trim_end_matches(']');
        if inode.is_empty() {
            "unknown".into()
        } else {
            clean(inode)
        }
    })
}

/// This machine as `<hostname>:<machine-id>`: a container has its own hostname, and two machines
/// sharing an engine differ in at least one of them (cloned images may share a machine id).
pub fn host_id() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into());
        let machine = read_trimmed("/etc/machine-id")
            .or_else(|| read_trimmed("/var/lib/dbus/machine-id"))
            .unwrap_or_else(|| "-".into());
        format!("{}:{}", clean(&name), clean(&machine))
    })
}

/// This process as an owner label value: `pid@boot-id@pidns@host`.
pub(crate) fn owner_label() -> String {
    format!("{}@{}@{}@{}", std::process::id(), boot_id(), pid_namespace(), host_id())
}

/// Judges the owner label of a resource from this process's point of view.
pub fn owner_status(owner: &str) -> OwnerStatus {
    if owner.starts_with(DAEMON_OWNER_PREFIX) {
        return OwnerStatus::Daemon;
    }
    let parts: Vec<&str> = owner.split('@').collect();
    let [pid, boot, ns, host] = parts.as_slice() else {
        // Includes the old `pid@boot-id`: the pid may be of another namespace, so it proves nothing.
        return OwnerStatus::Unknown;
    };
    let Ok(pid) = pid.parse::<u32>() else { return OwnerStatus::Unknown };
    if *host != host_id() {
        return OwnerStatus::OtherHost;
    }
    if *boot != boot_id() {
        // Same machine, earlier boot: every process of that boot is gone.
        return OwnerStatus::Dead;
    }
    if *ns != pid_namespace() {
        return OwnerStatus::OtherPidNamespace;
    }
    if Path::new("/proc").join(pid.to_string()).exists() {
        OwnerStatus::Alive
    } else {
        OwnerStatus::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_process_of_this_namespace_and_host_is_dead() {
        let me = owner_label();
        assert_eq!(owner_status(&me), OwnerStatus::Alive);
        let (b, n, h) = (boot_id(), pid_namespace(), host_id());
        assert_eq!(owner_status(&format!("{}@{b}@{n}@{h}", i32::MAX)), OwnerStatus::Dead);
        assert_eq!(owner_status(&format!("{}@another-boot@{n}@{h}", std::process::id())), OwnerStatus::Dead);
        assert_eq!(owner_status(&format!("{}@{b}@4026530000@{h}", i32::MAX)), OwnerStatus::OtherPidNamespace);
        assert_eq!(owner_status(&format!("{}@{b}@{n}@elsewhere:abc", i32::MAX)), OwnerStatus::OtherHost);
        // The old format names no namespace: a missing pid proves nothing.
        assert_eq!(owner_status(&format!("{}@{b}", i32::MAX)), OwnerStatus::Unknown);
        assert_eq!(owner_status("garbage"), OwnerStatus::Unknown);
        assert_eq!(owner_status(""), OwnerStatus::Unknown);
        assert_eq!(owner_status("daemon:/var/lib/x@1"), OwnerStatus::Daemon);
        assert_eq!(me.split('@').count(), 4, "{me}");
        assert!(!pid_namespace().is_empty() && pid_namespace() != "unknown");
    }
}

//! Dependency caches shared by a user's sandboxes (`caches`): package managers' download caches
//! and the lockfile-keyed `node_modules` store, mounted into every sandbox that asks so that an
//! agent validating the same project after each edit does not download everything again.
//!
//! Docker: one named volume per user and kind (`dagger-sandbox-cache-<uid>-<kind>`, labelled
//! managed, never removed by orphan cleanup), mounted at `/var/cache/dagger-sandbox/<kind>`.
//! Dagger: the engine's cache volumes of the same names. Local: host directories under
//! `$XDG_CACHE_HOME/dagger-sandbox` (else `~/.cache/dagger-sandbox`). Each tool is pointed at its
//! directory by its own variable. npm's cache (cacache), pnpm's store and pip's cache are written
//! with atomic renames and are safe for concurrent sandboxes; yarn 1's cache is not (see
//! docs/configuration.md).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Where the caches are mounted in a container sandbox.
pub const CACHE_ROOT: &str = "/var/cache/dagger-sandbox";
/// The label naming a cache volume's kind (`npm`, `pip`, ...).
pub const LABEL_CACHE: &str = "dev.dagger-sandbox.cache";
/// The label naming the user (uid) a cache volume belongs to.
pub const LABEL_CACHE_USER: &str = "dev.dagger-sandbox.cache-user";
/// The label naming a cache volume's namespace (see [`CACHE_NAMESPACE_ENV`]).
pub const LABEL_CACHE_NAMESPACE: &str = "dev.dagger-sandbox.cache-namespace";
/// The variable that keeps a separate set of caches (tests, CI jobs): its value (letters, digits,
/// `-`) becomes part of every cache's volume name and local directory; empty means the default set.
pub const CACHE_NAMESPACE_ENV: &str = "DAGGER_SANDBOX_CACHE_NAMESPACE";
/// The variable that names the `node_modules` store's directory inside a sandbox.
pub const NODE_MODULES_CACHE_ENV: &str = "DAGGER_SANDBOX_NODE_MODULES_CACHE";

/// One kind of dependency cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheKind {
    /// npm's download cache (`npm_config_cache`).
    Npm,
    /// pnpm's content-addressed store (`npm_config_store_dir`).
    Pnpm,
    /// yarn's cache (`YARN_CACHE_FOLDER`).
    Yarn,
    /// pip's cache (`PIP_CACHE_DIR`).
    Pip,
    /// Installed `node_modules` trees keyed by lockfile and Node major (`DAGGER_SANDBOX_NODE_MODULES_CACHE`).
    NodeModules,
}

impl CacheKind {
    /// Every kind, in order.
    pub const ALL: [CacheKind; 5] =
        [CacheKind::Npm, CacheKind::Pnpm, CacheKind::Yarn, CacheKind::Pip, CacheKind::NodeModules];

    /// Its name: `npm`, `pnpm`, `yarn`, `pip` or `node-modules`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Npm => "npm",
            CacheKind::Pnpm => "pnpm",
            CacheKind::Yarn => "yarn",
            CacheKind::Pip => "pip",
            CacheKind::NodeModules => "node-modules",
        }
    }

    /// The variable that points its tool at the cache directory.
    pub fn env_var(self) -> &'static str {
        match self {
            CacheKind::Npm => "npm_config_cache",
            CacheKind::Pnpm => "npm_config_store_dir",
            CacheKind::Yarn => "YARN_CACHE_FOLDER",
            CacheKind::Pip => "PIP_CACHE_DIR",
            CacheKind::NodeModules => NODE_MODULES_CACHE_ENV,
        }
    }

    /// Where it is mounted in a container sandbox.
    pub fn mount_path(self) -> String {
        format!("{CACHE_ROOT}/{}", self.as_str())
    }

    /// The Docker volume (and Dagger cache volume) of this kind for the current user.
    pub fn volume_name(self) -> String {
        let ns = namespace();
        let ns = if ns.is_empty() { ns } else { format!("{ns}-") };
        format!("dagger-sandbox-cache-{}-{ns}{}", nix::unistd::getuid(), self.as_str())
    }

    /// The host directory of this kind for the local backend.
    pub fn local_dir(self) -> PathBuf {
        let ns = namespace();
        local_cache_root().join(if ns.is_empty() {
            self.as_str().to_string()
        } else {
            format!("{ns}-{}", self.as_str())
        })
    }
}

impl std::str::FromStr for CacheKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CacheKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = CacheKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::InvalidArgument(format!("unknown cache {s:?}; known: {}", names.join(", ")))
        })
    }
}

/// The cache namespace from [`CACHE_NAMESPACE_ENV`], reduced to letters, digits and `-`.
pub fn namespace() -> String {
    std::env::var(CACHE_NAMESPACE_ENV)
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The host directory holding the local backend's caches.
pub fn local_cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("dagger-sandbox")
}

/// Which caches a sandbox mounts: `true` (all), `false` (none, the default) or a list of kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caches {
    /// All kinds, or none.
    All(bool),
    /// These kinds.
    Kinds(Vec<CacheKind>),
}

impl Caches {
    /// The kinds asked for, sorted and without repeats.
    pub fn kinds(&self) -> Vec<CacheKind> {
        let mut kinds = match self {
            Caches::All(true) => CacheKind::ALL.to_vec(),
            Caches::All(false) => vec![],
            Caches::Kinds(k) => k.clone(),
        };
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

impl Serialize for Caches {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Caches::All(on) => s.serialize_bool(*on),
            Caches::Kinds(k) => k.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Caches {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            On(bool),
            Names(Vec<String>),
        }
        let form = Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom("caches must be true, false or a list of npm, pnpm, yarn, pip, node-modules")
        })?;
        match form {
            Form::On(on) => Ok(Caches::All(on)),
            Form::Names(names) => names
                .iter()
                .map(|n| n.parse::<CacheKind>())
                .collect::<Result<Vec<_>>>()
                .map(Caches::Kinds)
                .map_err(|e| serde::de::Error::custom(format!("caches: {e}"))),
        }
    }
}

/// One cache as `dagger-sandbox cache ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// Where it lives: `docker` (a volume) or `local` (a host directory).
    pub backend: String,
    /// Its kind (`npm`, `pip`, `node-modules`, ...).
    pub kind: String,
    /// The volume's name or the directory's path.
    pub name: String,
    /// Its size in bytes, when it can be measured from here.
    pub size: Option<u64>,
}

/// This user's caches: Docker volumes (when an engine answers) and local directories.
pub async fn list_caches() -> Result<Vec<CacheEntry>> {
    let mut out = Vec::new();
    if let Ok(docker) = crate::backend::docker::connect(crate::backend::DOCKER_PROBE).await {
        for v in crate::backend::docker::volumes::list(&docker).await? {
            out.push(CacheEntry { backend: "docker".into(), kind: v.kind, name: v.name, size: v.size });
        }
    }
    for kind in CacheKind::ALL {
        let dir = kind.local_dir();
        // Only this namespace's: another's directories share the parent.
        if dir.is_dir() {
            let size = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || crate::backend::docker::volumes::dir_size(&dir)
            })
            .await
            .ok()
            .flatten();
            out.push(CacheEntry {
                backend: "local".into(),
                kind: kind.as_str().into(),
                name: dir.display().to_string(),
                size,
            });
        }
    }
    Ok(out)
}

/// What [`prune_caches`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// The caches removed.
    pub removed: Vec<String>,
    /// Volumes left because a running sandbox mounts them.
    pub in_use: Vec<String>,
}

/// Removes this user's caches of `kinds` (all when empty): volumes no sandbox mounts and local
/// directories. A cache removed while nothing uses it is simply made again, empty, on next use.
pub async fn prune_caches(kinds: &[CacheKind]) -> Result<PruneReport> {
    let wanted = |k: &str| kinds.is_empty() || kinds.iter().any(|x| x.as_str() == k);
    let mut report = PruneReport::default();
    for entry in list_caches().await? {
        if !wanted(&entry.kind) {
            continue;
        }
        if entry.backend == "docker" {
            let docker = crate::backend::docker::connect(crate::backend::DOCKER_PROBE)
                .await
                .map_err(|e| Error::engine("", "connecting to Docker", e))?;
            if crate::backend::docker::volumes::remove(&docker, &entry.name).await? {
                report.removed.push(entry.name);
            } else {
                report.in_use.push(entry.name);
            }
        } else {
            let path = PathBuf::from(&entry.name);
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path))
                .await
                .map_err(|e| Error::io("removing a cache directory", std::io::Error::other(e)))?
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                .map_err(|e| Error::io(format!("removing {}", entry.name), e))?;
            report.removed.push(entry.name);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_a_bool_or_known_names() {
        let all: Caches = serde_json::from_str("true").unwrap();
        assert_eq!(all.kinds(), CacheKind::ALL.to_vec());
        assert!(serde_json::from_str::<Caches>("false").unwrap().kinds().is_empty());
        let some: Caches = serde_json::from_str(r#"["pip", "npm", "npm"]"#).unwrap();
        assert_eq!(some.kinds(), vec![CacheKind::Npm, CacheKind::Pip]);
        let err = serde_json::from_str::<Caches>(r#"["maven"]"#).unwrap_err().to_string();
        assert!(err.contains("unknown cache \"maven\""), "{err}");
        assert!(serde_json::from_str::<Caches>("7").is_err());
    }

    #[test]
    fn each_kind_has_its_own_volume_path_and_variable() {
        let vols: std::collections::BTreeSet<_> = CacheKind::ALL.iter().map(|k| k.volume_name()).collect();
        assert_eq!(vols.len(), CacheKind::ALL.len());
        assert_eq!(CacheKind::Npm.mount_path(), "/var/cache/dagger-sandbox/npm");
        assert_eq!(CacheKind::Pip.env_var(), "PIP_CACHE_DIR");
    }
}

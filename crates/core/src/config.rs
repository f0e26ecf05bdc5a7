//! Sandbox configuration: the typed options, their safe defaults, templates, and the JSON file form.
//!
//! Every key can be set in code with the builder methods or read from a JSON file with
//! [`SandboxConfig::from_json_file`]; keys are camelCase there and unknown keys are an error, so a
//! typo never silently falls back to a default. The keys are documented in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::ca::{CaCertificates, ResolvedCa};
use crate::caches::{CacheKind, Caches};
use crate::error::{Error, Result};
use crate::paths::SandboxPath;
pub(crate) use crate::restricted::RestrictedPaths;

/// The image used when neither `image` nor `template` is given.
pub const DEFAULT_IMAGE: &str = "node:20-alpine3.22";
/// The working directory used when none is given.
pub const DEFAULT_WORKDIR: &str = "/workspace";
/// The default exec timeout: 600 s, from the seed design.
pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;
/// The default cap on each of stdout and stderr kept per exec (head and tail are kept).
pub const DEFAULT_OUTPUT_CAP_BYTES: usize = 1024 * 1024;
/// The default memory limit, where the engine supports one.
pub const DEFAULT_MEMORY_MB: u64 = 2048;
/// The default limit on processes, where the engine supports one.
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
/// Variable names whose values the dagger backend passes as secrets unless `secretPatterns` says otherwise.
pub const DEFAULT_SECRET_PATTERNS: &[&str] = &["*_TOKEN", "*_SECRET", "*_PASSWORD", "DATABRICKS_TOKEN"];
/// How long the dagger backend may take to reach an engine unless `daggerConnectTimeoutMs` says otherwise.
pub const DEFAULT_DAGGER_CONNECT_TIMEOUT_MS: u64 = 60_000;

/// Which engine to use; `auto` picks the strongest one that answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Dagger, then Docker, then local (with a warning), each probe bounded in time.
    #[default]
    Auto,
    /// The Dagger engine.
    Dagger,
    /// The Docker Engine API.
    Docker,
    /// Host processes in a private directory.
    Local,
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "dagger" => Ok(Self::Dagger),
            "docker" => Ok(Self::Docker),
            "local" => Ok(Self::Local),
            other => Err(Error::InvalidArgument(format!(
                "unknown backend {other:?}; expected auto, dagger, docker or local"
            ))),
        }
    }
}

/// A named set of defaults (image, workdir) for a kind of project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template's name (`node`, `python`, ...).
    pub name: &'static str,
    /// The image it starts from.
    pub image: &'static str,
    /// The working directory it starts in.
    pub workdir: &'static str,
}

/// The built-in templates.
pub const TEMPLATES: &[Template] = &[
    Template { name: "node", image: "node:20-alpine3.22", workdir: DEFAULT_WORKDIR },
    Template { name: "python", image: "python:3.12-alpine3.22", workdir: DEFAULT_WORKDIR },
    Template { name: "base", image: "alpine:3.22", workdir: DEFAULT_WORKDIR },
];

/// Looks up a built-in template by name.
pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// Everything a sandbox is created from. `Default` gives the safe defaults documented on each field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Engine to use (default `auto`).
    pub backend: BackendChoice,
    /// Image to start from; wins over `template` (default `node:20-alpine3.22`).
    pub image: Option<String>,
    /// Named template (`node`, `python`, `base`) giving image and workdir.
    pub template: Option<String>,
    /// Working directory, absolute (default `/workspace`); created if missing.
    pub workdir: Option<String>,
    /// Default exec timeout in milliseconds (default 600000).
    pub timeout_ms: Option<u64>,
    /// Environment variables set for every exec.
    pub env: BTreeMap<String, String>,
    /// Globs of host variable names copied into the sandbox env at create (e.g. `DATABRICKS_*`).
    pub env_passthrough: Vec<String>,
    /// Globs of sandbox paths where writes and deletes are refused (e.g. `/etc/**`, `**/.git/**`).
    pub restricted_paths: Vec<String>,
    /// Network access for commands (default off).
    pub network: bool,
    /// Memory limit in MiB where the engine supports one (default 2048; 0 = no limit).
    pub memory_mb: Option<u64>,
    /// Process-count limit where the engine supports one (default 1024; 0 = no limit).
    pub pids_limit: Option<i64>,
    /// Bytes of each of stdout/stderr kept per exec; the middle is dropped (default 1 MiB).
    pub output_cap_bytes: Option<usize>,
    /// Whether `auto` may fall back to a weaker backend (default true). `false` makes a missing
    /// engine an `ENGINE_UNAVAILABLE` error instead.
    pub fallback: Option<bool>,
    /// Extra labels put on engine resources (containers, images), e.g. a session or project id.
    pub labels: BTreeMap<String, String>,
    /// Container ports published on 127.0.0.1 (an ephemeral host port each, see
    /// [`Sandbox::ports`](crate::Sandbox::ports)). Ports turn the container network on: a service
    /// cannot be reached on a network-less container.
    pub ports: Vec<u16>,
    /// Who owns the sandbox's engine resources (default: this process, `pid@boot-id@pidns@host`). An owner
    /// starting with `daemon:` is never removed by [`cleanup_orphans`](crate::cleanup_orphans): a
    /// daemon reconciles its own sandboxes.
    pub owner: Option<String>,
    /// Dagger: let the engine reuse the result of an identical exec on an identical state (default
    /// false: every exec really runs). Turn it on for deterministic setup steps such as `npm ci`.
    pub cache_execs: bool,
    /// Dagger: globs of variable names whose values go in as Dagger secrets, scrubbed from engine
    /// logs (default `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `DATABRICKS_TOKEN`); an empty list turns this off.
    pub secret_patterns: Option<Vec<String>>,
    /// Dagger: how long finding, starting and connecting to an engine may take, in milliseconds
    /// (default 60000); the SDK itself has no bound.
    pub dagger_connect_timeout_ms: Option<u64>,
    /// Certificate authorities to trust besides the image's: `"host"` (the host's system bundle)
    /// or PEM file paths; default `$DAGGER_SANDBOX_CA_CERTIFICATES`, else none. Installed as
    /// `/etc/ssl/certs/dagger-sandbox-ca.pem`, appended to the trust store, and named by
    /// `NODE_EXTRA_CA_CERTS`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `PIP_CERT`,
    /// `npm_config_cafile` and `GIT_SSL_CAINFO`.
    pub ca_certificates: Option<CaCertificates>,
    /// Dependency caches shared by this user's sandboxes: `true` (all), `false` (default) or a
    /// list of `npm`, `pnpm`, `yarn`, `pip`, `node-modules`; see `docs/configuration.md`.
    pub caches: Option<Caches>,
    /// Docker: nothing in the sandbox outlives `close` (a validation's copy of a project). Its
    /// container is made with the engine's auto-remove, so `close` returns as soon as the
    /// container's processes are killed and the engine deletes its files afterwards, even when this
    /// process exits first; a crash before that leaves a labelled container for the orphan sweep.
    /// A container whose init dies is removed with its files at once, so this is for sandboxes
    /// whose files need no rescue. Not a config-file key (default false); other backends ignore it.
    #[serde(skip)]
    pub disposable: bool,
}

impl SandboxConfig {
    /// A config with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a config from a JSON file; unknown keys are an error.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config file {}", path.display()), e))?;
        Self::from_json_str(&text).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parses a config from JSON text; unknown keys are an error.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("config: {e}")))
    }

    /// Sets the backend.
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self
    }
    /// Sets the image.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
    /// Sets the template.
    pub fn template(mut self, name: impl Into<String>) -> Self {
        self.template = Some(name.into());
        self
    }
    /// Sets the working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }
    /// Sets the default exec timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(timeout.as_millis() as u64);
        self
    }
    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    /// Adds a glob of host variable names to copy in at create.
    pub fn env_passthrough(mut self, glob: impl Into<String>) -> Self {
        self.env_passthrough.push(glob.into());
        self
    }
    /// Adds a restricted-path glob.
    pub fn restricted_path(mut self, glob: impl Into<String>) -> Self {
        self.restricted_paths.push(glob.into());
        self
    }
    /// Turns network access on or off.
    pub fn network(mut self, on: bool) -> Self {
        self.network = on;
        self
    }
    /// Sets the memory limit in MiB (0 = none).
    pub fn memory_mb(mut self, mb: u64) -> Self {
        self.memory_mb = Some(mb);
        self
    }
    /// Sets the process-count limit (0 = none).
    pub fn pids_limit(mut self, n: i64) -> Self {
        self.pids_limit = Some(n);
        self
    }
    /// Sets the per-stream output cap in bytes.
    pub fn output_cap_bytes(mut self, n: usize) -> Self {
        self.output_cap_bytes = Some(n);
        self
    }
    /// Allows or forbids falling back to a weaker backend.
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = Some(on);
        self
    }
    /// Adds a label for engine resources.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Publishes a container port on 127.0.0.1 (and turns the network on).
    pub fn port(mut self, container_port: u16) -> Self {
        if !self.ports.contains(&container_port) {
            self.ports.push(container_port);
        }
        self
    }
    /// Sets the owner label of the engine resources (`daemon:...` owners are left to their daemon).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
    /// Dagger: lets the engine reuse identical execs on identical states (for setup steps).
    pub fn cache_execs(mut self, on: bool) -> Self {
        self.cache_execs = on;
        self
    }
    /// Dagger: replaces the secret-name globs (the defaults are dropped on the first call).
    pub fn secret_pattern(mut self, glob: impl Into<String>) -> Self {
        self.secret_patterns.get_or_insert_with(Vec::new).push(glob.into());
        self
    }
    /// Dagger: bounds finding, starting and connecting to an engine.
    pub fn dagger_connect_timeout(mut self, timeout: Duration) -> Self {
        self.dagger_connect_timeout_ms = Some(timeout.as_millis() as u64);
        self
    }

    /// Trusts these certificate authorities besides the image's (see `caCertificates`).
    pub fn ca_certificates(mut self, ca: CaCertificates) -> Self {
        self.ca_certificates = Some(ca);
        self
    }

    /// Mounts these dependency caches (see `caches`).
    pub fn caches(mut self, caches: Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Makes the sandbox disposable (see [`disposable`](Self::disposable)): on Docker, `close`
    /// hands the deletion of its files to the engine instead of waiting for it.
    pub fn disposable(mut self, on: bool) -> Self {
        self.disposable = on;
        self
    }

    /// Checks every value and fills in defaults, reading host variables for `envPassthrough`.
    pub(crate) fn resolve(&self) -> Result<ResolvedConfig> {
        let tpl = match &self.template {
            Some(name) => Some(template(name).ok_or_else(|| {
                let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
                Error::InvalidArgument(format!("unknown template {name:?}; known: {}", names.join(", ")))
            })?),
            None => None,
        };
        let image = self
            .image
            .clone()
            .or_else(|| tpl.map(|t| t.image.to_string()))
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
        if image.trim().is_empty() {
            return Err(Error::InvalidArgument("image must not be empty".into()));
        }
        let workdir_text = self
            .workdir
            .clone()
            .or_else(|| tpl.map(|t| t.workdir.to_string()))
            .unwrap_or_else(|| DEFAULT_WORKDIR.to_string());
        if !workdir_text.starts_with('/') {
            return Err(Error::InvalidArgument(format!("workdir must be absolute, got {workdir_text:?}")));
        }
        let workdir = SandboxPath::resolve(&SandboxPath::root(), &workdir_text)?;
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(Error::InvalidArgument("timeoutMs must be greater than 0".into()));
        }
        let output_cap = self.output_cap_bytes.unwrap_or(DEFAULT_OUTPUT_CAP_BYTES);
        if output_cap < 64 {
            return Err(Error::InvalidArgument(format!("outputCapBytes must be at least 64, got {output_cap}")));
        }
        let mut env = BTreeMap::new();
        if !self.env_passthrough.is_empty() {
            let globs = build_globset("envPassthrough", &self.env_passthrough)?;
            for (k, v) in std::env::vars() {
                if globs.is_match(&k) {
                    env.insert(k, v);
                }
            }
        }
        for (k, v) in &self.env {
            validate_env(k, v)?;
            env.insert(k.clone(), v.clone());
        }
        let restricted = RestrictedPaths::resolved(&self.restricted_paths, &workdir)?;
        if let Some(p) = self.ports.iter().find(|p| **p == 0) {
            return Err(Error::InvalidArgument(format!("ports must be 1-65535, got {p}")));
        }
        let mut ports = self.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        let owner = match &self.owner {
            Some(o) if o.trim().is_empty() || o.contains(['\n', '\0']) => {
                return Err(Error::InvalidArgument(format!("owner must be a non-empty single line, got {o:?}")))
            }
            Some(o) => o.clone(),
            None => crate::owner::owner_label(),
        };
        let secret_patterns = match &self.secret_patterns {
            Some(p) => p.clone(),
            None => DEFAULT_SECRET_PATTERNS.iter().map(|p| p.to_string()).collect(),
        };
        build_globset("secretPatterns", &secret_patterns)?;
        let dagger_connect_ms = self.dagger_connect_timeout_ms.unwrap_or(DEFAULT_DAGGER_CONNECT_TIMEOUT_MS);
        if dagger_connect_ms == 0 {
            return Err(Error::InvalidArgument("daggerConnectTimeoutMs must be greater than 0".into()));
        }
        let ca = crate::ca::resolve(self.ca_certificates.as_ref())?;
        Ok(ResolvedConfig {
            backend: self.backend,
            image,
            workdir,
            timeout: Duration::from_millis(timeout_ms),
            env,
            restricted,
            network: self.network,
            memory_mb: self.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            pids_limit: self.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
            output_cap,
            fallback: self.fallback.unwrap_or(true),
            labels: self.labels.clone(),
            ports,
            owner,
            cache_execs: self.cache_execs,
            secret_patterns,
            dagger_connect_timeout: Duration::from_millis(dagger_connect_ms),
            ca,
            caches: self.caches.as_ref().map(Caches::kinds).unwrap_or_default(),
            disposable: self.disposable,
        })
    }
}

/// A config with every default applied and every value checked.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedConfig {
    pub backend: BackendChoice,
    pub image: String,
    pub workdir: SandboxPath,
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub restricted: RestrictedPaths,
    pub network: bool,
    pub memory_mb: u64,
    pub pids_limit: i64,
    pub output_cap: usize,
    pub fallback: bool,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub owner: String,
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub cache_execs: bool,
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub secret_patterns: Vec<String>,
    #[cfg_attr(not(feature = "dagger"), allow(dead_code))]
    pub dagger_connect_timeout: Duration,
    /// The CA files to install, when any were asked for.
    pub ca: Option<ResolvedCa>,
    /// The dependency caches to mount.
    pub caches: Vec<CacheKind>,
    /// Whether the engine may delete the files after `close` returns (Docker auto-remove).
    pub disposable: bool,
}

/// Refuses a variable name or value that no engine could pass on intact.
pub(crate) fn validate_env(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "environment variable name {key:?} must be non-empty and contain no '=' or NUL"
        )));
    }
    if value.contains('\0') {
        return Err(Error::InvalidArgument(format!("environment variable {key} has a NUL byte in its value")));
    }
    Ok(())
}

pub(crate) fn build_globset(field: &str, globs: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| Error::InvalidArgument(format!("{field}: bad glob {g:?}: {e}")))?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::InvalidArgument(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let r = SandboxConfig::new().resolve().unwrap();
        assert_eq!(r.image, DEFAULT_IMAGE);
        assert_eq!(r.workdir.as_str(), "/workspace");
        assert_eq!(r.timeout, Duration::from_secs(600));
        assert!(!r.network);
        assert!(r.fallback);
        assert_eq!(r.output_cap, 1024 * 1024);
    }

    #[test]
    fn json_file_keys_are_camel_case_and_strict() {
        let c = SandboxConfig::from_json_str(
            r#"{"backend":"docker","template":"python","timeoutMs":5000,"envPassthrough":["X_*"],
                "restrictedPaths":["/etc/**"],"memoryMb":512,"pidsLimit":64,"outputCapBytes":4096,
                "network":true,"fallback":false,"env":{"A":"1"},"labels":{"project":"p"}}"#,
        )
        .unwrap();
        assert_eq!(c.backend, BackendChoice::Docker);
        let r = c.resolve().unwrap();
        assert_eq!(r.image, "python:3.12-alpine3.22");
        assert_eq!(r.timeout, Duration::from_millis(5000));
        assert_eq!(r.memory_mb, 512);
        assert!(!r.fallback);
        let err = SandboxConfig::from_json_str(r#"{"imgae":"x"}"#).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("imgae"), "{err}");
    }

    #[test]
    fn bad_values_are_invalid_argument() {
        for c in [
            SandboxConfig::new().workdir("relative"),
            SandboxConfig::new().template("cobol"),
            SandboxConfig::new().timeout(Duration::ZERO),
            SandboxConfig::new().env("A=B", "x"),
            SandboxConfig::new().restricted_path("[unclosed"),
            SandboxConfig::new().image(" "),
        ] {
            assert_eq!(c.resolve().unwrap_err().code(), crate::ErrorCode::InvalidArgument, "{c:?}");
        }
    }

    #[test]
    fn env_passthrough_copies_matching_host_vars_only() {
        std::env::set_var("DSBX_TEST_PASS_A", "1");
        std::env::set_var("DSBX_OTHER", "2");
        let r = SandboxConfig::new().env_passthrough("DSBX_TEST_PASS_*").resolve().unwrap();
        assert_eq!(r.env.get("DSBX_TEST_PASS_A").map(String::as_str), Some("1"));
        assert!(!r.env.contains_key("DSBX_OTHER"));
    }
}

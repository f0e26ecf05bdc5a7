//! Where a Dagger engine can be reached from here, found by local checks only (environment, files
//! on disk): an existing session, a CLI of the SDK's line, or the SDK's download. Pure over
//! [`HostEnv`], so every rule is unit-tested without an engine.

use std::path::{Path, PathBuf};

use super::version::SDK_VERSION;

/// Where a CLI binary was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CliOrigin {
    /// `_EXPERIMENTAL_DAGGER_CLI_BIN`.
    EnvVar,
    /// `dagger` on `PATH`.
    Path,
    /// The SDK's cache (`$XDG_CACHE_HOME/dagger/dagger-<version>`), from an earlier download.
    Cache,
}

impl CliOrigin {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CliOrigin::EnvVar => "_EXPERIMENTAL_DAGGER_CLI_BIN",
            CliOrigin::Path => "dagger on PATH",
            CliOrigin::Cache => "cached SDK CLI",
        }
    }
}

/// One way to reach an engine, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An existing session (inside `dagger run`, or a nested exec).
    Session {
        /// `DAGGER_SESSION_PORT`.
        port: u16,
        /// `DAGGER_SESSION_TOKEN`.
        token: String,
    },
    /// A CLI to run `dagger session` with.
    Cli {
        /// The binary.
        path: PathBuf,
        /// Where it was found.
        origin: CliOrigin,
    },
    /// The SDK downloads the CLI from dl.dagger.io (needs network), then runs it.
    Provision,
}

/// The facts of the host that detection looks at, gathered once so detection itself is pure.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostEnv {
    /// `DAGGER_SESSION_PORT`.
    pub session_port: Option<String>,
    /// `DAGGER_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `_EXPERIMENTAL_DAGGER_CLI_BIN`.
    pub cli_bin: Option<PathBuf>,
    /// `_EXPERIMENTAL_DAGGER_RUNNER_HOST`.
    pub runner_host: Option<String>,
    /// The directories of `PATH`.
    pub path_dirs: Vec<PathBuf>,
    /// The SDK's cache directory for CLIs (`<cache>/dagger`), when one can be named.
    pub cache_dir: Option<PathBuf>,
}

impl HostEnv {
    /// The current process's environment.
    pub fn current() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        HostEnv {
            session_port: var("DAGGER_SESSION_PORT"),
            session_token: var("DAGGER_SESSION_TOKEN"),
            cli_bin: var("_EXPERIMENTAL_DAGGER_CLI_BIN").map(PathBuf::from),
            runner_host: var("_EXPERIMENTAL_DAGGER_RUNNER_HOST"),
            path_dirs: std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default(),
            cache_dir: sdk_cache_dir(),
        }
    }

    /// The first executable called `name` in `PATH`.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        self.path_dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
    }

    /// Where the SDK keeps (or would download) the CLI of [`SDK_VERSION`].
    pub fn cached_cli(&self) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(format!("dagger-{SDK_VERSION}")))
    }
}

/// The SDK's cache directory (its `Downloader::cache_dir`, without creating it): `$XDG_CACHE_HOME`
/// or the platform cache directory, then `dagger`.
fn sdk_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("dagger"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?);
    let base = if cfg!(target_os = "macos") { home.join("Library/Caches") } else { home.join(".cache") };
    Some(base.join("dagger"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// What detection found: the sources to try, in order, and what it looked at and did not find.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detection {
    /// Sources to try, in order.
    pub sources: Vec<Source>,
    /// Every place looked at that gave nothing, for the `ENGINE_UNAVAILABLE` message.
    pub missing: Vec<String>,
    /// The container runtime a CLI could provision an engine with, if any.
    pub runner: Option<String>,
}

/// Container runtimes the Dagger CLI can start an engine with.
const RUNNERS: &[&str] = &["docker", "podman", "nerdctl", "finch"];

/// Finds every way to an engine: the session env first, then CLIs (`_EXPERIMENTAL_DAGGER_CLI_BIN`,
/// the SDK's cache of exactly its own version, then `PATH`, whose `dagger` may be of any version and
/// is version-checked before use), then, with `allow_provision`, the SDK's download.
pub(crate) fn detect(env: &HostEnv, allow_provision: bool) -> Detection {
    let mut d = Detection::default();
    match (&env.session_port, &env.session_token) {
        (Some(port), Some(token)) => match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => d.sources.push(Source::Session { port, token: token.clone() }),
            _ => d.missing.push(format!("DAGGER_SESSION_PORT={port:?} is not a port number")),
        },
        (Some(_), None) => d.missing.push("DAGGER_SESSION_PORT is set but DAGGER_SESSION_TOKEN is not".into()),
        (None, Some(_)) => d.missing.push("DAGGER_SESSION_TOKEN is set but DAGGER_SESSION_PORT is not".into()),
        (None, None) => d.missing.push("no session (DAGGER_SESSION_PORT/DAGGER_SESSION_TOKEN unset)".into()),
    }
    let push_cli = |d: &mut Detection, path: PathBuf, origin: CliOrigin| {
        let dup = d.sources.iter().any(|s| matches!(s, Source::Cli { path: p, .. } if *p == path));
        if !dup {
            d.sources.push(Source::Cli { path, origin });
        }
    };
    match &env.cli_bin {
        Some(p) if is_executable(p) => push_cli(&mut d, p.clone(), CliOrigin::EnvVar),
        Some(p) => d.missing.push(format!("_EXPERIMENTAL_DAGGER_CLI_BIN={} is not an executable file", p.display())),
        None => d.missing.push("_EXPERIMENTAL_DAGGER_CLI_BIN unset".into()),
    }
    match env.cached_cli() {
        Some(p) if is_executable(&p) => push_cli(&mut d, p, CliOrigin::Cache),
        Some(p) => d.missing.push(format!("no cached CLI at {}", p.display())),
        None => d.missing.push("no cache directory for a downloaded CLI (HOME unset)".into()),
    }
    match env.which("dagger") {
        Some(p) => push_cli(&mut d, p, CliOrigin::Path),
        None => d.missing.push("no dagger on PATH".into()),
    }
    d.runner = match &env.runner_host {
        Some(h) => Some(format!("_EXPERIMENTAL_DAGGER_RUNNER_HOST={h}")),
        None => RUNNERS.iter().find_map(|r| env.which(r).map(|p| p.display().to_string())),
    };
    if allow_provision {
        d.sources.push(Source::Provision);
    }
    d
}

/// Whether `auto` should try Dagger at all: a session is there, or a CLI is there together with a
/// container runtime (or runner host) to start an engine with. A download is never worth waiting
/// for in `auto`. The error says why not.
pub(crate) fn plausible(d: &Detection) -> Result<(), String> {
    let session = d.sources.iter().any(|s| matches!(s, Source::Session { .. }));
    let cli = d.sources.iter().any(|s| matches!(s, Source::Cli { .. }));
    if session || (cli && d.runner.is_some()) {
        return Ok(());
    }
    if cli {
        return Err(format!(
            "a dagger CLI is installed but no container runtime ({}) is on PATH to start an engine with",
            RUNNERS.join("/")
        ));
    }
    Err(d.missing.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dagger::fake_cli::exe;

    fn empty_env(tmp: &Path) -> HostEnv {
        HostEnv { path_dirs: vec![tmp.join("bin")], cache_dir: Some(tmp.join("cache/dagger")), ..Default::default() }
    }

    #[test]
    fn detection_order_is_session_then_named_cli_then_exact_cached_cli_then_path_then_download() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("cache/dagger")).unwrap();
        let on_path = exe(&tmp.path().join("bin"), "dagger", "#!/bin/sh\n");
        let custom = exe(tmp.path(), "my-dagger", "#!/bin/sh\n");
        let cached = exe(&tmp.path().join("cache/dagger"), &format!("dagger-{SDK_VERSION}"), "#!/bin/sh\n");
        let env = HostEnv {
            session_port: Some("4711".into()),
            session_token: Some("tok".into()),
            cli_bin: Some(custom.clone()),
            ..empty_env(tmp.path())
        };
        let d = detect(&env, true);
        assert_eq!(
            d.sources,
            [
                Source::Session { port: 4711, token: "tok".into() },
                Source::Cli { path: custom, origin: CliOrigin::EnvVar },
                Source::Cli { path: cached, origin: CliOrigin::Cache },
                Source::Cli { path: on_path, origin: CliOrigin::Path },
                Source::Provision,
            ]
        );
        assert!(detect(&env, false).sources.iter().all(|s| *s != Source::Provision));
    }

    #[test]
    fn nothing_found_lists_every_place_looked_and_auto_says_no() {
        let tmp = tempfile::tempdir().unwrap();
        let d = detect(&empty_env(tmp.path()), false);
        assert!(d.sources.is_empty());
        let why = plausible(&d).unwrap_err();
        for needle in ["DAGGER_SESSION_PORT", "_EXPERIMENTAL_DAGGER_CLI_BIN", "PATH", "cached CLI"] {
            assert!(why.contains(needle), "{needle} missing from {why:?}");
        }
    }

    #[test]
    fn auto_wants_a_session_or_a_cli_with_a_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        exe(&bin, "dagger", "#!/bin/sh\n");
        let env = empty_env(tmp.path());
        let why = plausible(&detect(&env, false)).unwrap_err();
        assert!(why.contains("no container runtime"), "{why}");
        exe(&bin, "podman", "#!/bin/sh\n");
        assert!(plausible(&detect(&env, false)).is_ok());
        let runner = HostEnv { runner_host: Some("tcp://10.0.0.1:1234".into()), ..empty_env(tmp.path()) };
        std::fs::remove_file(bin.join("podman")).unwrap();
        assert!(plausible(&detect(&runner, false)).is_ok());
        let session = HostEnv { session_port: Some("1".into()), session_token: Some("t".into()), ..Default::default() };
        assert!(plausible(&detect(&session, false)).is_ok());
    }

    #[test]
    fn bad_session_env_and_non_executable_cli_are_reported_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let not_exe = tmp.path().join("dagger-file");
        std::fs::write(&not_exe, "x").unwrap();
        let env = HostEnv {
            session_port: Some("not-a-port".into()),
            session_token: Some("t".into()),
            cli_bin: Some(not_exe),
            ..empty_env(tmp.path())
        };
        let d = detect(&env, false);
        assert!(d.sources.is_empty(), "{:?}", d.sources);
        let text = d.missing.join("; ");
        assert!(text.contains("not a port number") && text.contains("not an executable file"), "{text}");
        let half = HostEnv { session_port: Some("80".into()), ..empty_env(tmp.path()) };
        assert!(detect(&half, false).missing[0].contains("DAGGER_SESSION_TOKEN is not"));
    }
}

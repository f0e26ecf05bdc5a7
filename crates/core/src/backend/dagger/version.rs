//! Which Dagger CLIs and engines this build talks to. The SDK's generated queries match one API
//! line (`dagger-sdk` 0.21.x speaks the engine's 0.21 schema), so a CLI or engine of another line
//! fails on its first query with a schema error that names neither version. Versions are checked
//! before a CLI is started (`dagger version`) and right after a session answers (`version`), and a
//! mismatch becomes `ENGINE_UNAVAILABLE` naming both versions and what to install.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The SDK's own version: the CLI it would download, and the engine line its queries are for.
pub(crate) const SDK_VERSION: &str = dagger_sdk::core::DAGGER_ENGINE_VERSION;

/// The engine version this backend was verified against live (the conformance suite, all cases).
pub(crate) const VERIFIED: &str = "0.21.8";

/// How long `dagger version` may take: it only prints (with the update check turned off).
const CLI_VERSION_BOUND: Duration = Duration::from_secs(10);

/// A release version `major.minor.patch`; a pre-release or build suffix (`-dev-abc`) is kept apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    /// The numeric part.
    pub nums: (u64, u64, u64),
    /// Anything after `-` or `+`, empty for a release.
    pub suffix: String,
}

impl Version {
    /// Parses `v0.21.8`, `0.21.8` or `v0.21.9-dev-123abc`; anything else (an unstamped dev build
    /// answers `""`) is `None`.
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let (core, suffix) = match t.find(['-', '+']) {
            Some(i) => (&t[..i], t[i + 1..].to_string()),
            None => (t, String::new()),
        };
        let mut it = core.split('.').map(|n| n.parse::<u64>().ok());
        let nums = (it.next()??, it.next()??, it.next()??);
        if it.next().is_some() {
            return None;
        }
        Some(Version { nums, suffix })
    }

    /// The `major.minor` line.
    pub fn line(&self) -> (u64, u64) {
        (self.nums.0, self.nums.1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.nums;
        write!(f, "{a}.{b}.{c}")?;
        if !self.suffix.is_empty() {
            write!(f, "-{}", self.suffix)?;
        }
        Ok(())
    }
}

/// What a version means for this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Compat {
    /// Exactly the version verified live.
    Verified,
    /// The same API line as the SDK (another patch release): used, with a note in the log,
    /// because Dagger keeps a line's schema stable across its patch releases.
    SameLine,
    /// Refused: the reason, naming both versions and what to install.
    Refused(String),
}

/// The SDK's line, `(0, 21)` for `dagger-sdk` 0.21.8.
fn sdk_line() -> (u64, u64) {
    Version::parse(SDK_VERSION).map(|v| v.line()).unwrap_or((0, 0))
}

/// What to install, for messages.
pub(crate) fn install_hint() -> String {
    format!(
        "install the Dagger CLI {SDK_VERSION} (https://docs.dagger.io/install, or `curl -fsSL https://dl.dagger.io/dagger/install.sh \
         | DAGGER_VERSION={SDK_VERSION} sh`) and point _EXPERIMENTAL_DAGGER_CLI_BIN at it if another dagger is on PATH"
    )
}

/// Judges the version `what` (a CLI or an engine) reported as `text`.
pub(crate) fn judge(what: &str, text: &str) -> Compat {
    let (major, minor) = sdk_line();
    let Some(v) = Version::parse(text) else {
        return Compat::Refused(format!(
            "{what} reports version {text:?}, which is not a release this build can check (it speaks the \
             {major}.{minor} line, verified with {VERIFIED}); {}",
            install_hint()
        ));
    };
    if Version::parse(VERIFIED).as_ref() == Some(&v) {
        return Compat::Verified;
    }
    if v.line() == (major, minor) {
        return Compat::SameLine;
    }
    let side = if v.line() > (major, minor) { "newer" } else { "older" };
    Compat::Refused(format!(
        "{what} is {v}, {side} than the {major}.{minor} line this build's dagger-sdk {SDK_VERSION} speaks (verified with \
         {VERIFIED}); {}",
        install_hint()
    ))
}

/// Reads the version a CLI reports (`dagger v0.21.8 (runner) linux/amd64`), bounded.
pub(crate) async fn cli_version(cli: &Path) -> Result<String, String> {
    let run = tokio::process::Command::new(cli)
        .arg("version")
        // Only this probe: `version` would otherwise ask a registry whether a newer CLI exists.
        .env("DAGGER_NO_UPDATE_CHECK", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(CLI_VERSION_BOUND, run).await {
        Err(_) => {
            return Err(format!("`{} version` did not answer within {} s", cli.display(), CLI_VERSION_BOUND.as_secs()))
        }
        Ok(Err(e)) => return Err(format!("could not run `{} version`: {e}", cli.display())),
        Ok(Ok(out)) => out,
    };
    let text = String::from_utf8_lossy(&out.stdout);
    parse_cli_version(&text).ok_or_else(|| {
        format!(
            "`{} version` exited {} without a version (stdout {:?}, stderr {:?})",
            cli.display(),
            out.status,
            super::error::shorten(text.trim()),
            super::error::shorten(String::from_utf8_lossy(&out.stderr).trim())
        )
    })
}

/// The version word of `dagger version` output.
pub(crate) fn parse_cli_version(out: &str) -> Option<String> {
    let line = out.lines().find(|l| l.trim_start().starts_with("dagger "))?;
    let word = line.split_whitespace().nth(1)?;
    Version::parse(word).map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_and_without_v_and_suffixes() {
        assert_eq!(Version::parse("v0.21.8").unwrap().nums, (0, 21, 8));
        assert_eq!(Version::parse(" 0.21.8\n").unwrap().to_string(), "0.21.8");
        let dev = Version::parse("v0.21.9-dev-123abc").unwrap();
        assert_eq!((dev.nums, dev.suffix.as_str()), ((0, 21, 9), "dev-123abc"));
        for bad in ["", "v", "0.21", "0.21.x", "1.2.3.4", "devel"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_sdk_line_is_accepted_and_the_verified_release_is_named() {
        assert_eq!(SDK_VERSION, "0.21.8", "bump VERIFIED and the docs together with the SDK pin");
        assert_eq!(judge("engine", "v0.21.8"), Compat::Verified);
        assert_eq!(judge("engine", "0.21.3"), Compat::SameLine);
        assert_eq!(judge("engine", "v0.21.9-dev-abc"), Compat::SameLine);
    }

    #[test]
    fn other_lines_are_refused_naming_both_versions_and_the_fix() {
        for (v, side) in [("v0.20.3", "older"), ("v0.22.0", "newer"), ("v1.0.0-beta.23", "newer")] {
            let Compat::Refused(why) = judge("engine", v) else { panic!("{v} accepted") };
            assert!(why.contains(v.trim_start_matches('v')) && why.contains(side), "{why}");
            assert!(why.contains("0.21.8") && why.contains("_EXPERIMENTAL_DAGGER_CLI_BIN"), "{why}");
        }
        // An unstamped dev build answers an empty version; its API view cannot be trusted.
        let Compat::Refused(why) = judge("engine", "") else { panic!("empty version accepted") };
        assert!(why.contains("not a release"), "{why}");
    }

    #[test]
    fn cli_version_output_is_read_from_the_dagger_line() {
        assert_eq!(
            parse_cli_version("dagger v0.21.8 (image://registry.dagger.io/engine:v0.21.8) linux/amd64\n").as_deref(),
            Some("0.21.8")
        );
        assert_eq!(
            parse_cli_version("warning: x\ndagger v0.20.1 (docker-container://e) linux/arm64").as_deref(),
            Some("0.20.1")
        );
        assert_eq!(parse_cli_version("Usage: dagger [command]"), None);
    }

    #[tokio::test]
    async fn a_cli_is_asked_its_version_without_the_update_check() {
        let tmp = tempfile::tempdir().unwrap();
        // Answers like the real CLI, and only when the update check is off.
        let cli = crate::backend::dagger::fake_cli::exe(
            tmp.path(),
            "dagger",
            "#!/bin/sh\n[ \"$1\" = version ] && [ -n \"$DAGGER_NO_UPDATE_CHECK\" ] && \
             echo 'dagger v0.20.1 (image://registry.dagger.io/engine:v0.20.1) linux/amd64'\n",
        );
        assert_eq!(cli_version(&cli).await.unwrap(), "0.20.1");
        std::fs::write(&cli, "#!/bin/sh\necho nope >&2\nexit 3\n").unwrap();
        let err = cli_version(&cli).await.unwrap_err();
        assert!(err.contains("without a version") && err.contains("nope"), "{err}");
    }
}

//! Which steps a project gets: the caller's commands, else npm's when it has a `package.json`.

use std::path::{Path, PathBuf};

use crate::ValidateError;

/// The install step of a project with a lockfile. npm's audit and funding notes are left out:
/// they never change the exit code, and the audit is a registry round trip of up to seconds.
pub const NPM_CI: &str = "npm ci --no-audit --no-fund";
/// The install step of a project without a lockfile.
pub const NPM_INSTALL: &str = "npm install --no-audit --no-fund";

/// What is never copied into the sandbox: rebuilt there, or not part of the project.
pub const EXCLUDE: [&str; 2] = ["node_modules", ".git"];

/// One step of a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `install` or `test`.
    pub name: &'static str,
    /// The shell command.
    pub command: String,
}

/// A project on the host and the steps to run in it, checked before any sandbox is made.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project directory, absolute.
    pub dir: PathBuf,
    /// The steps, in order; never empty.
    pub steps: Vec<Step>,
    /// The key of the project's installed tree in the `node_modules` store, when its install step
    /// is the default [`NPM_CI`] (a lockfile and no install command given).
    pub modules_key: Option<String>,
}

impl Plan {
    /// The plan for `dir`: `install`/`test` when given (an empty string skips that step), else
    /// [`NPM_CI`] (with a `package-lock.json`; [`NPM_INSTALL`] without) and `npm test` when the project
    /// has a `package.json`.
    pub fn for_project(
        dir: impl AsRef<Path>,
        install: Option<&str>,
        test: Option<&str>,
    ) -> Result<Plan, ValidateError> {
        let dir = dir.as_ref();
        if !dir.exists() {
            return Err(ValidateError::InvalidProject(format!("{} does not exist", dir.display())));
        }
        if !dir.is_dir() {
            return Err(ValidateError::InvalidProject(format!("{} is not a directory", dir.display())));
        }
        let abs = dir
            .canonicalize()
            .map_err(|e| ValidateError::InvalidProject(format!("{} cannot be read: {e}", dir.display())))?;
        let npm = abs.join("package.json").is_file();
        let locked = npm && abs.join("package-lock.json").is_file();
        let default_install = if locked { NPM_CI } else { NPM_INSTALL };
        let pick = |flag: Option<&str>, default: &str| match flag {
            Some(cmd) => cmd.trim().to_string(),
            None if npm => default.to_string(),
            None => String::new(),
        };
        let steps: Vec<Step> = [("install", pick(install, default_install)), ("test", pick(test, "npm test"))]
            .into_iter()
            .filter(|(_, cmd)| !cmd.is_empty())
            .map(|(name, command)| Step { name, command })
            .collect();
        if steps.is_empty() {
            return Err(ValidateError::NothingToRun(dir.to_path_buf()));
        }
        let modules_key = if locked && install.is_none() { crate::modules::project_key(&abs) } else { None };
        Ok(Plan { dir: abs, steps, modules_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_projects_get_npm_steps_and_explicit_commands_win() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("package.json"), "{}").unwrap();
        let p = Plan::for_project(d.path(), None, None).unwrap();
        assert_eq!(p.steps.iter().map(|s| s.command.as_str()).collect::<Vec<_>>(), [NPM_INSTALL, "npm test"]);
        assert_eq!(p.modules_key, None);
        std::fs::write(d.path().join("package-lock.json"), "{}").unwrap();
        let p = Plan::for_project(d.path(), None, None).unwrap();
        assert_eq!(p.steps[0].command, NPM_CI, "a lockfile makes the install reproducible");
        assert!(p.modules_key.is_some());
        let p = Plan::for_project(d.path(), Some(""), Some(" make check ")).unwrap();
        assert_eq!(p.steps, [Step { name: "test", command: "make check".into() }]);
    }

    #[test]
    fn a_plan_that_cannot_run_is_refused_before_any_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let err = Plan::for_project(d.path(), None, None).unwrap_err();
        assert_eq!(err.code().as_str(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("no package.json"), "{err}");
        let err = Plan::for_project(d.path().join("missing"), None, None).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let file = d.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(Plan::for_project(&file, None, Some("true")).unwrap_err().to_string().contains("not a directory"));
    }
}

//! Named session defaults (image, working directory, ports, warm pool size): the core's built-in
//! templates, overridden and extended by `<state-dir>/templates.json`, so a team can point `node` at
//! its own image and keep sandboxes of it started ahead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the override file in the state directory.
pub const TEMPLATES_FILE: &str = "templates.json";

/// The largest warm pool a template may ask for (as `serve --pool`).
pub const MAX_POOL: usize = 64;

/// Working directory of a daemon session when neither the request nor its template names one.
pub const DEFAULT_WORKING_DIRECTORY: &str = "/app";

/// One template as the daemon applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Its name (`node`, `python`, ...).
    pub name: String,
    /// The image a session starts from.
    pub image: String,
    /// The working directory a session starts in.
    pub working_directory: String,
    /// Ports forwarded when a session runs a command and names no ports itself.
    pub ports: Vec<u16>,
    /// Sandboxes of this template the daemon keeps started ahead (`"pool": N`; 0, the default,
    /// keeps none). `serve --pool TEMPLATE=N` wins over it.
    #[serde(default)]
    pub pool: usize,
}

/// One entry of `templates.json`; every key is optional and overrides the built-in template of
/// the same name (a new name must give an image).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Override {
    image: Option<String>,
    working_directory: Option<String>,
    ports: Option<Vec<u16>>,
    pool: Option<usize>,
}

/// Why `templates.json` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file exists but could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid, or a template in it is not.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the template's name.
        message: String,
    },
}

impl TemplateError {
    /// The stable code: `IO_ERROR` or `INVALID_ARGUMENT`.
    pub fn code(&self) -> &'static str {
        match self {
            TemplateError::Io { .. } => "IO_ERROR",
            TemplateError::Invalid { .. } => "INVALID_ARGUMENT",
        }
    }
}

/// The default ports of the built-in templates: the port their ecosystems' dev servers use.
fn builtin_ports(name: &str) -> Vec<u16> {
    match name {
        "node" => vec![3000],
        "python" => vec![8000],
        _ => vec![],
    }
}

/// Every template the daemon knows, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    by_name: BTreeMap<String, Template>,
}

impl Templates {
    /// The core's built-in templates with their default ports.
    pub fn builtin() -> Self {
        let by_name = dagger_sandbox::TEMPLATES
            .iter()
            .map(|t| {
                let tpl = Template {
                    name: t.name.to_string(),
                    image: t.image.to_string(),
                    working_directory: t.workdir.to_string(),
                    ports: builtin_ports(t.name),
                    pool: 0,
                };
                (tpl.name.clone(), tpl)
            })
            .collect();
        Templates { by_name }
    }

    /// The built-ins overridden by `<state_dir>/templates.json` when that file exists.
    pub fn load(state_dir: &Path) -> Result<Self, TemplateError> {
        let path = state_dir.join(TEMPLATES_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Self::builtin().with_overrides(&text).map_err(|message| TemplateError::Invalid { path, message })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::builtin()),
            Err(source) => Err(TemplateError::Io { path, source }),
        }
    }

    /// These templates with the JSON object `text` applied over them.
    fn with_overrides(mut self, text: &str) -> Result<Self, String> {
        let overrides: BTreeMap<String, Override> = serde_json::from_str(text).map_err(|e| {
            format!(
                "{e}; expected {{\"<name>\": {{\"image\": \"...\", \"workingDirectory\": \"/app\", \"ports\": [3000], \"pool\": 2}}}}"
            )
        })?;
        for (name, o) in overrides {
            if name.trim().is_empty() {
                return Err("a template name must not be empty".into());
            }
            let base = self.by_name.remove(&name);
            let image = match (o.image, &base) {
                (Some(i), _) => i,
                (None, Some(b)) => b.image.clone(),
                (None, None) => return Err(format!("template {name:?} is new, so it needs an \"image\"")),
            };
            if image.trim().is_empty() {
                return Err(format!("template {name:?}: image must not be empty"));
            }
            let working_directory = o
                .working_directory
                .or_else(|| base.as_ref().map(|b| b.working_directory.clone()))
                .unwrap_or_else(|| DEFAULT_WORKING_DIRECTORY.to_string());
            if !working_directory.starts_with('/') {
                return Err(format!("template {name:?}: workingDirectory must be absolute, got {working_directory:?}"));
            }
            let ports = o.ports.or_else(|| base.as_ref().map(|b| b.ports.clone())).unwrap_or_default();
            if ports.contains(&0) {
                return Err(format!("template {name:?}: ports must be 1-65535"));
            }
            let pool = o.pool.or_else(|| base.as_ref().map(|b| b.pool)).unwrap_or(0);
            if pool > MAX_POOL {
                return Err(format!("template {name:?}: pool must be 0-{MAX_POOL}, got {pool}"));
            }
            self.by_name.insert(name.clone(), Template { name, image, working_directory, ports, pool });
        }
        Ok(self)
    }

    /// The template called `name`.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.by_name.get(name)
    }

    /// Every template, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.by_name.values()
    }

    /// The warm pools to start: each template's `pool`, with `flags` (`serve --pool`) winning for
    /// the templates they name (`=0` turns a file's pool off), sorted by template.
    pub fn pools(&self, flags: &[(String, usize)]) -> Vec<(String, usize)> {
        let mut pools: BTreeMap<String, usize> =
            self.by_name.values().filter(|t| t.pool > 0).map(|t| (t.name.clone(), t.pool)).collect();
        pools.extend(flags.iter().cloned());
        pools.into_iter().filter(|(_, n)| *n > 0).collect()
    }

    /// The known names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

/// The templates of a state directory: built-ins overridden by its `templates.json`.
pub fn load(state_dir: &Path) -> Result<Templates, TemplateError> {
    Templates::load(state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cover_node_and_python_with_ports() {
        let t = Templates::builtin();
        assert_eq!(t.get("node").unwrap().ports, vec![3000]);
        assert_eq!(t.get("python").unwrap().image, dagger_sandbox::template("python").unwrap().image);
        assert!(t.names().contains(&"base"));
    }

    #[test]
    fn the_file_overrides_fields_and_adds_templates() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Templates::builtin());
        std::fs::write(
            dir.path().join(TEMPLATES_FILE),
            r#"{"node": {"image": "my/node:1", "workingDirectory": "/app"}, "go": {"image": "golang:1", "ports": [8080]}}"#,
        )
        .unwrap();
        let t = load(dir.path()).unwrap();
        let node = t.get("node").unwrap();
        assert_eq!((node.image.as_str(), node.working_directory.as_str()), ("my/node:1", "/app"));
        assert_eq!(node.ports, vec![3000], "fields the file leaves out keep the built-in value");
        let go = t.get("go").unwrap();
        assert_eq!((go.working_directory.as_str(), go.ports.clone()), ("/app", vec![8080]));
    }

    #[test]
    fn pools_come_from_the_file_and_the_flag_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().pools(&[]).is_empty(), "no pool unless asked");
        std::fs::write(
            dir.path().join(TEMPLATES_FILE),
            r#"{"node": {"pool": 2}, "python": {"pool": 0}, "go": {"image": "golang:1", "pool": 1}}"#,
        )
        .unwrap();
        let t = load(dir.path()).unwrap();
        assert_eq!(t.get("node").unwrap().pool, 2);
        assert_eq!(t.pools(&[]), vec![("go".to_string(), 1), ("node".to_string(), 2)]);
        let flags = [("node".to_string(), 5), ("base".to_string(), 1), ("go".to_string(), 0)];
        assert_eq!(t.pools(&flags), vec![("base".to_string(), 1), ("node".to_string(), 5)]);
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("{not json", "expected"),
            (r#"{"node": {"imgae": "x"}}"#, "imgae"),
            (r#"{"rust": {"ports": [1]}}"#, "needs an \"image\""),
            (r#"{"node": {"workingDirectory": "app"}}"#, "absolute"),
            (r#"{"node": {"pool": 65}}"#, "pool must be 0-64"),
            (r#"{"node": {"pool": -1}}"#, "invalid value"),
        ] {
            std::fs::write(dir.path().join(TEMPLATES_FILE), text).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT");
            assert!(err.to_string().contains(needle) && err.to_string().contains(TEMPLATES_FILE), "{err}");
        }
    }
}

//! Pointing a new sandbox's tools at the dependency caches it mounts (`caches`): in a container the
//! mounted volumes, on the local backend the user's host cache directories.

use super::Sandbox;
use crate::backend::BackendKind;
use crate::caches::CacheKind;

/// The variable naming npm's log directory.
const NPM_LOGS_ENV: &str = "npm_config_logs_dir";
/// Where npm's logs go in a container sandbox that mounts the shared npm cache.
const NPM_LOGS_DIR: &str = "/tmp/npm-logs";

impl Sandbox {
    /// Sets each mounted cache's variable (values the config's `env` gives win), and in a container
    /// points npm's logs away from the shared npm cache. A local cache directory that cannot be
    /// made is left out, with a warning.
    pub(super) fn set_cache_env(&self, warnings: &mut Vec<String>) {
        let local = self.backend() == BackendKind::Local;
        let mut vars = Vec::new();
        for kind in &self.inner.cfg.caches {
            let dir = if local {
                let dir = kind.local_dir();
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    warnings.push(format!(
                        "the {} cache directory {} could not be made ({e}); installing without it",
                        kind.as_str(),
                        dir.display()
                    ));
                    continue;
                }
                dir.display().to_string()
            } else {
                kind.mount_path()
            };
            vars.push((kind.env_var().to_string(), dir));
            if *kind == CacheKind::Npm && !local {
                // npm writes a log of every run into its cache: on a full shared cache even
                // `npm test` would fail (ENOSPC), so the logs stay in the sandbox.
                vars.push((NPM_LOGS_ENV.to_string(), NPM_LOGS_DIR.to_string()));
            }
        }
        let mut st = self.state();
        for (k, v) in vars {
            st.env.entry(k).or_insert(v);
        }
    }
}

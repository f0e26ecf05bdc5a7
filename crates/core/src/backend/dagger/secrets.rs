//! Which environment variables go into a Dagger exec as secrets: values of names matching the
//! configured globs are passed with `withSecretVariable`, so the engine scrubs them from its logs
//! and never writes them into its cache or into the container's image config.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiled `secretPatterns`.
#[derive(Debug, Clone)]
pub(crate) struct SecretRules {
    set: GlobSet,
}

/// One exec's environment, split into plain variables and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SplitEnv {
    /// Passed on the command line of the exec (`env K=V ...`).
    pub plain: Vec<(String, String)>,
    /// Passed as Dagger secrets.
    pub secret: Vec<(String, String)>,
}

impl SecretRules {
    /// Compiles the globs (matched against whole variable names, case-sensitively).
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p).map_err(|e| Error::InvalidArgument(format!("secretPatterns: bad glob {p:?}: {e}")))?);
        }
        Ok(SecretRules { set: b.build().map_err(|e| Error::InvalidArgument(format!("secretPatterns: {e}")))? })
    }

    /// Whether the variable `name` is a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// Splits `env` by name.
    pub fn split(&self, env: &BTreeMap<String, String>) -> SplitEnv {
        let mut out = SplitEnv::default();
        for (k, v) in env {
            let list = if self.is_secret(k) { &mut out.secret } else { &mut out.plain };
            list.push((k.clone(), v.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SECRET_PATTERNS;

    fn defaults() -> SecretRules {
        SecretRules::new(&DEFAULT_SECRET_PATTERNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_patterns_catch_tokens_secrets_and_passwords_only() {
        let r = defaults();
        for name in ["GITHUB_TOKEN", "DATABRICKS_TOKEN", "AWS_SECRET", "DB_PASSWORD", "NPM_AUTH_TOKEN"] {
            assert!(r.is_secret(name), "{name}");
        }
        for name in ["PATH", "TOKEN", "NODE_ENV", "GITHUB_TOKEN_FILE", "github_token", "SECRET_NAME"] {
            assert!(!r.is_secret(name), "{name}");
        }
    }

    #[test]
    fn split_keeps_every_variable_exactly_once() {
        let env: BTreeMap<String, String> = [("A", "1"), ("API_TOKEN", "t0k"), ("Z_PASSWORD", "pw"), ("LANG", "C")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = defaults().split(&env);
        assert_eq!(s.plain, [("A".to_string(), "1".to_string()), ("LANG".into(), "C".into())]);
        assert_eq!(s.secret, [("API_TOKEN".to_string(), "t0k".to_string()), ("Z_PASSWORD".into(), "pw".into())]);
    }

    #[test]
    fn custom_patterns_replace_the_defaults_and_bad_globs_are_refused() {
        let r = SecretRules::new(&["OPENAI_*".into()]).unwrap();
        assert!(r.is_secret("OPENAI_API_KEY"));
        assert!(!r.is_secret("GITHUB_TOKEN"));
        assert!(SecretRules::new(&[])
            .unwrap()
            .split(&BTreeMap::from([("X_TOKEN".into(), "v".into())]))
            .secret
            .is_empty());
        let e = SecretRules::new(&["[".into()]).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
    }
}

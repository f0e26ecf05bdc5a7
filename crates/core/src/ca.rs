//! Trusting extra certificate authorities (`caCertificates`). A network that intercepts TLS with its
//! own CA (most corporate proxies) makes every `npm install`, `pip install` or `git clone` in a
//! sandbox fail with `SELF_SIGNED_CERT_IN_CHAIN` unless the sandbox trusts that CA as well; this is
//! the key, its checks and the variables it sets. Installing the bundle is `sandbox::ca`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The environment variable that gives `caCertificates` when a config leaves it out: `host`, or
/// PEM file paths separated by `:`; empty means none.
pub const CA_CERTIFICATES_ENV: &str = "DAGGER_SANDBOX_CA_CERTIFICATES";
/// Where the given certificates land in a container sandbox (`NODE_EXTRA_CA_CERTS` points here).
pub const CA_FILE: &str = "/etc/ssl/certs/dagger-sandbox-ca.pem";
/// The sandbox's trust store: the image's bundle with the given certificates appended. The other
/// variables point here, since they replace a tool's roots rather than add to them.
pub const TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The largest bundle accepted (all given files together, and the image's own store).
pub const CA_BUNDLE_MAX: u64 = 8 * 1024 * 1024;
/// The variables set for every exec, so the common tools trust the bundle.
pub const CA_ENV_VARS: [&str; 6] =
    ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "npm_config_cafile", "GIT_SSL_CAINFO"];

/// Which certificate authorities a sandbox trusts besides its image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaCertificates {
    /// The host's system bundle: `$SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`.
    Host,
    /// These PEM files (an empty list turns an environment default off).
    Files(Vec<PathBuf>),
}

impl std::str::FromStr for CaCertificates {
    type Err = Error;
    /// `host`, or paths separated by `:` (the CLI flag and the environment default).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "host" {
            return Ok(CaCertificates::Host);
        }
        Ok(CaCertificates::Files(s.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect()))
    }
}

impl Serialize for CaCertificates {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CaCertificates::Host => s.serialize_str("host"),
            CaCertificates::Files(files) => files.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CaCertificates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Word(String),
            Files(Vec<PathBuf>),
        }
        match Form::deserialize(d)
            .map_err(|_| serde::de::Error::custom("caCertificates must be \"host\" or a list of PEM file paths"))?
        {
            Form::Word(w) if w == "host" => Ok(CaCertificates::Host),
            Form::Word(w) => Err(serde::de::Error::custom(format!(
                "caCertificates must be \"host\" or a list of PEM file paths, got {w:?} (write [{w:?}] for one file)"
            ))),
            Form::Files(files) => Ok(CaCertificates::Files(files)),
        }
    }
}

/// The host's system CA bundle: `$SSL_CERT_FILE` when it names a file, else Debian's
/// `/etc/ssl/certs/ca-certificates.crt`; `INVALID_ARGUMENT` when neither exists.
pub fn host_bundle() -> Result<PathBuf> {
    let env = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let candidates: Vec<PathBuf> = env.into_iter().chain([PathBuf::from(TRUST_STORE)]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        Error::InvalidArgument(format!(
            "caCertificates \"host\": no host CA bundle found (looked at {}); give PEM file paths instead",
            looked.join(", ")
        ))
    })
}

/// The checked host files of a `caCertificates` setting: at least one, each an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedCa {
    /// The PEM files, in order.
    pub files: Vec<PathBuf>,
}

/// Resolves the setting (the config's, else [`CA_CERTIFICATES_ENV`]): `None` when no CA is asked
/// for; `INVALID_ARGUMENT` for a path that does not exist, is not a file, or is too large.
pub(crate) fn resolve(config: Option<&CaCertificates>) -> Result<Option<ResolvedCa>> {
    let from_env;
    let spec = match config {
        Some(spec) => spec,
        None => match std::env::var(CA_CERTIFICATES_ENV).ok().filter(|v| !v.trim().is_empty()) {
            Some(v) => {
                from_env = v.parse::<CaCertificates>()?;
                &from_env
            }
            None => return Ok(None),
        },
    };
    let files = match spec {
        CaCertificates::Host => vec![host_bundle()?],
        CaCertificates::Files(files) => files.clone(),
    };
    if files.is_empty() {
        return Ok(None);
    }
    let mut total = 0u64;
    for f in &files {
        let meta = std::fs::metadata(f)
            .map_err(|e| Error::InvalidArgument(format!("caCertificates: {} cannot be read: {e}", f.display())))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!("caCertificates: {} is not a file", f.display())));
        }
        total += meta.len();
    }
    if total > CA_BUNDLE_MAX {
        return Err(Error::InvalidArgument(format!(
            "caCertificates: the files hold {total} bytes, more than the {CA_BUNDLE_MAX} a CA bundle may"
        )));
    }
    Ok(Some(ResolvedCa { files }))
}

/// Reads the given files into one PEM bundle, each checked to hold a certificate.
pub(crate) async fn read_bundle(ca: &ResolvedCa) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for f in &ca.files {
        let data = read_capped(f)
            .await?
            .ok_or_else(|| Error::InvalidArgument(format!("caCertificates: {} does not exist", f.display())))?;
        if !data.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(Error::InvalidArgument(format!(
                "caCertificates: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                f.display()
            )));
        }
        // A bundle holds public certificates only; a key file given by mistake (or by a caller
        // probing for files) must not be copied into a sandbox.
        if data.windows(11).any(|w| w == b"PRIVATE KEY") {
            return Err(Error::InvalidArgument(format!(
                "caCertificates: {} holds a private key; give a file with certificates only",
                f.display()
            )));
        }
        append_pem(&mut out, &data);
    }
    Ok(out)
}

/// Appends `pem` to `bundle`, keeping a line break between the two.
pub(crate) fn append_pem(bundle: &mut Vec<u8>, pem: &[u8]) {
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(pem);
    if !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
}

/// A host file of at most [`CA_BUNDLE_MAX`] bytes, or `None` when it does not exist.
pub(crate) async fn read_capped(path: &Path) -> Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::InvalidArgument(format!("caCertificates: {} cannot be read: {e}", path.display())))
        }
    };
    let mut data = Vec::new();
    file.take(CA_BUNDLE_MAX + 1)
        .read_to_end(&mut data)
        .await
        .map_err(|e| Error::InvalidArgument(format!("caCertificates: {} cannot be read: {e}", path.display())))?;
    if data.len() as u64 > CA_BUNDLE_MAX {
        return Err(Error::InvalidArgument(format!(
            "caCertificates: {} is larger than the {CA_BUNDLE_MAX} bytes a CA bundle may be",
            path.display()
        )));
    }
    Ok(Some(data))
}

/// The variables that make the common tools trust the bundle, for a sandbox whose `/` is at
/// `root` on the exec side (`""` in a container, the private directory for the local backend).
pub(crate) fn env_vars(root: &str) -> BTreeMap<String, String> {
    CA_ENV_VARS
        .iter()
        .map(|k| {
            let file = if *k == "NODE_EXTRA_CA_CERTS" { CA_FILE } else { TRUST_STORE };
            (k.to_string(), format!("{root}{file}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_is_host_or_a_list_and_anything_else_says_so() {
        let host: CaCertificates = serde_json::from_str("\"host\"").unwrap();
        assert_eq!(host, CaCertificates::Host);
        let files: CaCertificates = serde_json::from_str(r#"["/a.pem", "/b.pem"]"#).unwrap();
        assert_eq!(files, CaCertificates::Files(vec!["/a.pem".into(), "/b.pem".into()]));
        assert_eq!(serde_json::to_string(&files).unwrap(), r#"["/a.pem","/b.pem"]"#);
        let err = serde_json::from_str::<CaCertificates>("\"/a.pem\"").unwrap_err().to_string();
        assert!(err.contains("[\"/a.pem\"]"), "{err}");
        assert!(serde_json::from_str::<CaCertificates>("7").is_err());
        assert_eq!(
            "a.pem:b.pem".parse::<CaCertificates>().unwrap(),
            CaCertificates::Files(vec!["a.pem".into(), "b.pem".into()])
        );
    }

    #[test]
    fn a_missing_or_non_file_path_is_invalid_argument_and_an_empty_list_is_none() {
        let d = tempfile::tempdir().unwrap();
        let missing = CaCertificates::Files(vec![d.path().join("nope.pem")]);
        let err = resolve(Some(&missing)).unwrap_err();
        assert_eq!(err.code().as_str(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let dir = CaCertificates::Files(vec![d.path().to_path_buf()]);
        assert!(resolve(Some(&dir)).unwrap_err().to_string().contains("not a file"));
        assert_eq!(resolve(Some(&CaCertificates::Files(vec![]))).unwrap(), None);
    }

    #[tokio::test]
    async fn a_file_without_a_certificate_is_refused_and_bundles_keep_line_breaks() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = read_bundle(&ResolvedCa { files: vec![junk] }).await.unwrap_err();
        assert_eq!(err.code().as_str(), "INVALID_ARGUMENT");
        let a = d.path().join("a.pem");
        std::fs::write(&a, "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----").unwrap();
        let both = read_bundle(&ResolvedCa { files: vec![a.clone(), a.clone()] }).await.unwrap();
        let key = d.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n").unwrap();
        let err = read_bundle(&ResolvedCa { files: vec![a, key] }).await.unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        assert_eq!(String::from_utf8(both).unwrap().matches("-----END CERTIFICATE-----\n").count(), 2);
    }

    #[test]
    fn node_adds_to_its_roots_and_the_rest_read_the_whole_store() {
        let vars = env_vars("");
        assert_eq!(vars["NODE_EXTRA_CA_CERTS"], CA_FILE);
        for k in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "npm_config_cafile", "GIT_SSL_CAINFO"] {
            assert_eq!(vars[k], TRUST_STORE, "{k}");
        }
        assert_eq!(env_vars("/tmp/x")["SSL_CERT_FILE"], format!("/tmp/x{TRUST_STORE}"));
    }
}

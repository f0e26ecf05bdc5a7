//! Installing a `caCertificates` bundle into a new sandbox: the given certificates as their own
//! file, and appended to the sandbox's trust store (the image's, or on the local backend a copy of
//! the host's), then the variables that point the common tools at them.

use tokio::io::AsyncReadExt;

use super::Sandbox;
use crate::backend::BackendKind;
use crate::ca::{self, ResolvedCa, CA_BUNDLE_MAX, CA_FILE, TRUST_STORE};
use crate::error::{Error, ErrorCode, Result};
use crate::paths::SandboxPath;
use crate::stream;
use crate::tarball::TarWriter;

impl Sandbox {
    /// Writes the bundle and the extended trust store (one upload), and sets the variables unless
    /// the config's `env` already names them.
    pub(super) async fn install_ca(&self, bundle: &ResolvedCa) -> Result<()> {
        let ours = ca::read_bundle(bundle).await?;
        let local = self.backend() == BackendKind::Local;
        let store_path = SandboxPath::resolve(&SandboxPath::root(), TRUST_STORE)?;
        let mut store = if local {
            // Local commands see the host: start from the host's store, when it has one.
            match ca::host_bundle() {
                Ok(host) => ca::read_capped(&host).await?.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        } else {
            self.image_store(&store_path).await?
        };
        ca::append_pem(&mut store, &ours);
        let ca_path = SandboxPath::resolve(&SandboxPath::root(), CA_FILE)?;
        let tar = stream::produce(move |out| {
            let mut w = TarWriter::to(out);
            w.file(&ca_path, &ours, 0o644)?;
            w.file(&store_path, &store, 0o644)?;
            w.finish().map(drop)
        });
        self.guard(self.inner.engine.upload_tar(tar)).await?;
        self.set_ca_env();
        Ok(())
    }

    /// Sets the CA variables (for a new sandbox and for one taken back), keeping values the config
    /// gave explicitly.
    pub(super) fn set_ca_env(&self) {
        let root = if self.backend() == BackendKind::Local { self.resource_id() } else { String::new() };
        let mut st = self.state();
        for (k, v) in ca::env_vars(&root) {
            st.env.entry(k).or_insert(v);
        }
    }

    /// The image's trust store, empty when it has none.
    async fn image_store(&self, path: &SandboxPath) -> Result<Vec<u8>> {
        let mut r = match self.guard(self.inner.engine.read_file(path, CA_BUNDLE_MAX)).await {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut data = Vec::new();
        r.read_to_end(&mut data)
            .await
            .map_err(|e| Error::from_stream(format!("sandbox {}: reading {path}", self.inner.id), e))?;
        Ok(data)
    }
}

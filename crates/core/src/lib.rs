//! Isolated, containerized sandboxes that programs drive through one API: write files, run
//! commands, read results, fork the state, export artifacts, serve ports.
//!
//! ```no_run
//! use dagger_sandbox::{BackendChoice, ExecOptions, Sandbox, SandboxConfig};
//!
//! # async fn demo() -> dagger_sandbox::Result<()> {
//! let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Docker).image("node:20-alpine3.22")).await?;
//! sb.write_files([("package.json", r#"{"scripts":{"test":"node --test"}}"#), ("a.test.js", "require('node:test')('ok', () => {})")]).await?;
//! let r = sb.exec("npm test", ExecOptions::new()).await?;
//! println!("exit {} in {} ms\n{}", r.exit_code, r.duration_ms, r.stdout);
//! sb.close().await?;
//! # Ok(()) }
//! ```
//!
//! Engines: `dagger` (a Dagger engine through dagger-sdk, immutable states; cargo feature `dagger`,
//! on by default), `docker` (the Docker Engine API, container isolation) and `local` (host
//! processes in a private directory, process isolation only). `auto` picks the strongest that
//! answers within a bounded probe and reports what it got ([`Sandbox::backend`],
//! [`Sandbox::isolation`], [`Sandbox::fallback_reason`]). Every failure is an [`Error`] with a
//! stable [`ErrorCode`].

mod backend;
mod ca;
pub mod caches;
mod cleanup;
mod config;
mod error;
mod exec;
pub mod inventory;
pub mod metrics;
mod owner;
mod paths;
mod pool;
pub mod private_dir;
mod restricted;
mod sandbox;
mod service;
pub mod snapshot;
mod stream;
mod tarball;
mod transfer;

pub use backend::{BackendKind, DirEntry, EntryKind, Isolation, PortMapping, LIST_MAX_ENTRIES};
pub use ca::{host_bundle, CaCertificates, CA_CERTIFICATES_ENV, CA_ENV_VARS, CA_FILE, TRUST_STORE};
pub use caches::{CacheKind, Caches};
pub use cleanup::{cleanup_orphans, CleanupReport};
pub use config::{
    template, BackendChoice, SandboxConfig, Template, DEFAULT_IMAGE, DEFAULT_MEMORY_MB, DEFAULT_OUTPUT_CAP_BYTES,
    DEFAULT_PIDS_LIMIT, DEFAULT_TIMEOUT_MS, DEFAULT_WORKDIR, TEMPLATES,
};
pub use error::{Error, ErrorCode, Result};
pub use exec::{ExecOptions, ExecResult, OutputChunk, OutputStream};
pub use owner::{
    host_id, owner_status, OwnerStatus, DAEMON_OWNER_PREFIX, LABEL_HOST, LABEL_MANAGED, LABEL_OWNER, LABEL_SANDBOX,
};
pub use paths::SandboxPath;
pub use pool::Pool;
pub use sandbox::{ExecStream, Owner, Sandbox, OWNER_TOUCH_INTERVAL, READ_FILE_LIMIT};
pub use service::{ServeOptions, Service, DEFAULT_READY_TIMEOUT};
pub use snapshot::Snapshot;
pub use stream::FileReader;
pub use tokio_util::sync::CancellationToken;
pub use transfer::{FileWrite, RefreshOptions, DEFAULT_FILE_MODE};

/// Backend-specific facts for tests, tools and the daemon.
pub mod engines {
    pub use crate::backend::docker::{docker_available, DockerInfo};
    pub use crate::backend::local::local_sandbox_parent;

    /// Whether something really serves `port` on 127.0.0.1: connected, and not closed at once
    /// (Docker's port proxy accepts before anything listens in the container).
    pub async fn serves_on_loopback(port: u16) -> bool {
        crate::service::accepts(port).await
    }

    /// Whether `auto` would try a Dagger engine here, and if not why (a session in the env, or a
    /// CLI plus a container runtime to start an engine with). Local checks only: never connects.
    pub fn dagger_plausible() -> std::result::Result<(), String> {
        #[cfg(feature = "dagger")]
        return crate::backend::dagger::auto_plausible();
        #[cfg(not(feature = "dagger"))]
        Err("this build has no dagger backend (cargo feature `dagger` is off)".into())
    }
}

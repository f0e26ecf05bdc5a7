//! Node.js binding of the dagger-sandbox core (napi-rs v3). The `dagger-sandbox` npm package wraps
//! these native items in a thin JS layer (`index.js`) that turns errors into `SandboxError` and
//! plumbs `AbortSignal`; everything else happens here, over `dagger_sandbox::Sandbox`.

#![deny(clippy::all)]

mod bench;
mod cleanup;
mod error;
mod exec;
mod options;
mod sandbox;
// After `sandbox`: napi must parse the struct before these modules add methods to it.
mod durable;
mod lifecycle;
mod snapshot;

pub use cleanup::{cleanup_orphans, CleanupReport};
pub use exec::ExecCanceller;
pub use options::{DirEntry, EntryKind, ExecOptions, ExecResult, OutputChunk, SandboxOptions};
pub use sandbox::NativeSandbox;
pub use snapshot::{delete_snapshot, inspect_snapshot, list_snapshots, SnapshotInfo};

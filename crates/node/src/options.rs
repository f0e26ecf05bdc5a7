//! The plain JS objects the binding takes and returns, and their conversions to core types.

use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use serde::Serialize;

use crate::error::invalid_argument;

/// How a sandbox is created; every field is optional and has a safe default.
#[napi(object)]
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SandboxOptions {
    /// Engine to use: `auto` (default), `dagger`, `docker` or `local`.
    #[napi(ts_type = "'auto' | 'dagger' | 'docker' | 'local'")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Image to start from; wins over `template` (default `node:20-alpine3.22`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Named template (`node`, `python`, `base`) giving image and workdir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Working directory, absolute (default `/workspace`); created if missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Default exec timeout in milliseconds (default 600000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<f64>,
    /// Environment variables set for every exec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<HashMap<String, String>>,
    /// Globs of host variable names copied into the sandbox env at create (e.g. `DATABRICKS_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_passthrough: Option<Vec<String>>,
    /// Globs of sandbox paths where writes and deletes fail with `RESTRICTED_PATH` (e.g. `/etc/**`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted_paths: Option<Vec<String>>,
    /// Network access for commands (default off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Memory limit in MiB where the engine supports one (default 2048; 0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<f64>,
    /// Process-count limit where the engine supports one (default 1024; 0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<f64>,
    /// Bytes of each of stdout/stderr kept per exec; the middle is dropped (default 1 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cap_bytes: Option<f64>,
    /// Whether `auto` may fall back to a weaker backend (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
    /// Extra labels put on engine resources (containers, images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// Certificate authorities to trust besides the image's: `'host'` (the host's system bundle) or
    /// PEM file paths (default `$DAGGER_SANDBOX_CA_CERTIFICATES`); a missing file is `INVALID_ARGUMENT`.
    #[napi(ts_type = "'host' | Array<string>")]
    #[serde(skip)]
    pub ca_certificates: Option<Either<String, Vec<String>>>,
    /// Dependency caches shared by this user's sandboxes: `true` (all), `false` (default) or some
    /// of `npm`, `pnpm`, `yarn`, `pip`, `node-modules`.
    #[napi(ts_type = "boolean | Array<'npm' | 'pnpm' | 'yarn' | 'pip' | 'node-modules'>")]
    #[serde(skip)]
    pub caches: Option<Either<bool, Vec<String>>>,
}

impl SandboxOptions {
    /// The core config, validated by the core's own serde rules (so both surfaces agree on them).
    pub fn into_config(self) -> napi::Result<dagger_sandbox::SandboxConfig> {
        for (name, v) in [
            ("timeoutMs", self.timeout_ms),
            ("memoryMb", self.memory_mb),
            ("pidsLimit", self.pids_limit),
            ("outputCapBytes", self.output_cap_bytes),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
                    return Err(invalid_argument(format!("{name} must be a non-negative integer, got {v}")));
                }
            }
        }
        // JS numbers arrive as f64; integral ones serialize as integers, which the core expects.
        let mut value = serde_json::to_value(&self).map_err(invalid_argument)?;
        if let Some(map) = value.as_object_mut() {
            for v in map.values_mut() {
                if let Some(f) = v.as_f64().filter(|f| f.fract() == 0.0) {
                    *v = serde_json::Value::from(f as i64);
                }
            }
            // The core parses it (and says what is wrong with a bad one).
            match &self.ca_certificates {
                Some(Either::A(word)) => map.insert("caCertificates".into(), word.as_str().into()),
                Some(Either::B(paths)) => map.insert("caCertificates".into(), paths.clone().into()),
                None => None,
            };
            match &self.caches {
                Some(Either::A(on)) => map.insert("caches".into(), (*on).into()),
                Some(Either::B(kinds)) => map.insert("caches".into(), kinds.clone().into()),
                None => None,
            };
        }
        dagger_sandbox::SandboxConfig::from_json_str(&value.to_string()).map_err(crate::error::to_napi)
    }
}

/// Per-call exec settings; everything defaults to the sandbox's own state.
#[napi(object)]
#[derive(Default)]
pub struct ExecOptions {
    /// Variables added to (and overriding) the sandbox env for this call only.
    pub env: Option<HashMap<String, String>>,
    /// Working directory for this call; relative paths resolve against the sandbox workdir.
    pub cwd: Option<String>,
    /// Timeout for this call in milliseconds; the sandbox default when absent. Past it the
    /// command is killed and the call rejects with `TIMEOUT`.
    pub timeout_ms: Option<f64>,
    /// Bytes (or UTF-8 text) fed to the command's standard input, then EOF.
    pub stdin: Option<Either<String, Buffer>>,
}

impl ExecOptions {
    /// The core options, without output streaming or cancellation (added by the caller).
    pub fn into_core(self) -> napi::Result<dagger_sandbox::ExecOptions> {
        let mut o = dagger_sandbox::ExecOptions::new();
        for (k, v) in self.env.unwrap_or_default() {
            o = o.env(k, v);
        }
        if let Some(cwd) = self.cwd {
            o = o.cwd(cwd);
        }
        if let Some(ms) = self.timeout_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(invalid_argument(format!("timeoutMs must be a positive number, got {ms}")));
            }
            o = o.timeout(Duration::from_millis(ms.ceil() as u64));
        }
        if let Some(stdin) = self.stdin {
            o = o.stdin(bytes_of(stdin));
        }
        Ok(o)
    }
}

/// The bytes of a `string | Buffer` argument (strings as UTF-8).
pub fn bytes_of(v: Either<String, Buffer>) -> Vec<u8> {
    match v {
        Either::A(s) => s.into_bytes(),
        Either::B(b) => b.to_vec(),
    }
}

/// What a finished command produced. A non-zero `exitCode` is a result, not an error.
#[napi(object)]
pub struct ExecResult {
    /// The command's exit code.
    pub exit_code: i64,
    /// Standard output, UTF-8 (invalid bytes replaced); head and tail kept when over the cap.
    pub stdout: String,
    /// Standard error, as `stdout`.
    pub stderr: String,
    /// Wall time from start to the end of output, in milliseconds.
    pub duration_ms: f64,
    /// Whether either stream went over the output cap and lost its middle.
    pub truncated: bool,
}

impl From<dagger_sandbox::ExecResult> for ExecResult {
    fn from(r: dagger_sandbox::ExecResult) -> Self {
        ExecResult {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            duration_ms: r.duration_ms as f64,
            truncated: r.truncated,
        }
    }
}

/// A piece of output as the command wrote it (not line-aligned; UTF-8 may be split).
#[napi(object)]
pub struct OutputChunk {
    /// `stdout` or `stderr`.
    #[napi(ts_type = "'stdout' | 'stderr'")]
    pub stream: String,
    /// The bytes written.
    pub data: Buffer,
}

/// What a directory entry is.
#[napi(string_enum = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else (fifo, socket, device).
    Other,
}

/// One entry of `listDirectory`.
#[napi(object)]
pub struct DirEntry {
    /// The entry's name, without its directory.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size in bytes (of the link itself for a symlink).
    pub size: f64,
}

impl From<dagger_sandbox::DirEntry> for DirEntry {
    fn from(e: dagger_sandbox::DirEntry) -> Self {
        let kind = match e.kind {
            dagger_sandbox::EntryKind::File => EntryKind::File,
            dagger_sandbox::EntryKind::Dir => EntryKind::Dir,
            dagger_sandbox::EntryKind::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        DirEntry { name: e.name, kind, size: e.size as f64 }
    }
}

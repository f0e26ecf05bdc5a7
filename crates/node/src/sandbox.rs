//! `NativeSandbox`: the core `Sandbox` as a napi class. `index.js` wraps it as `DaggerSandbox`.

use std::collections::HashMap;

use dagger_sandbox::{FileWrite, RefreshOptions, Sandbox};
use napi::bindgen_prelude::{AsyncBlock, Buffer, Either, Env};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;

use crate::error::{in_sandbox, to_napi};
use crate::exec::{self, ExecCanceller};
use crate::options::OutputChunk;
use crate::options::{bytes_of, DirEntry, ExecOptions, ExecResult, SandboxOptions};

/// A sandbox: a filesystem, a working directory and an environment in an engine (docker, local).
/// Every method takes `&self` (the core is internally synchronised), so calls may overlap and
/// `close()` may run while others are in flight; those then reject with `CLOSED`.
#[napi]
pub struct NativeSandbox {
    pub(crate) sb: Sandbox,
}

#[napi]
impl NativeSandbox {
    /// Creates a sandbox; `options` defaults to the `auto` backend and the default image.
    #[napi(factory, catch_unwind)]
    pub async fn create(options: Option<SandboxOptions>) -> napi::Result<NativeSandbox> {
        let cfg = options.unwrap_or_default().into_config()?;
        let sb = Sandbox::create(cfg).await.map_err(to_napi)?;
        Ok(NativeSandbox { sb })
    }

    /// A core error of this sandbox as a JS error naming it.
    pub(crate) fn err(&self, e: dagger_sandbox::Error) -> napi::Error {
        in_sandbox(self.sb.id(), e)
    }

    /// The sandbox id (`sbx-` and 12 hex digits), also a label on its engine resources.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.sb.id().to_string()
    }

    /// The engine it runs on: `docker`, `local` or `dagger`.
    #[napi(getter, ts_return_type = "'dagger' | 'docker' | 'local'")]
    pub fn backend(&self) -> String {
        self.sb.backend().as_str().to_string()
    }

    /// How isolated it is from the host: `container` or `process`.
    #[napi(getter, ts_return_type = "'container' | 'process'")]
    pub fn isolation(&self) -> String {
        self.sb.isolation().as_str().to_string()
    }

    /// The current working directory of later execs and relative paths.
    #[napi(getter)]
    pub fn workdir(&self) -> String {
        self.sb.workdir()
    }

    /// Whether `close()` has been called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.sb.is_closed()
    }

    /// Runs `sh -c command`; `canceller.cancel()` kills it, `onOutput` gets chunks in order.
    #[napi(ts_return_type = "Promise<ExecResult>")]
    pub fn exec(
        &self,
        env: &Env,
        command: String,
        options: Option<ExecOptions>,
        canceller: Option<&ExecCanceller>,
        // Spelled out (not the `OnOutput` alias) so the generated d.ts names only types it defines.
        on_output: Option<ThreadsafeFunction<OutputChunk, (), OutputChunk, Status, false>>,
    ) -> napi::Result<AsyncBlock<ExecResult>> {
        exec::start(env, self.sb.clone(), command, options, canceller, on_output)
    }

    /// Writes one file (parent directories created), with `mode` or 0644.
    #[napi(catch_unwind)]
    pub async fn write_file(
        &self,
        path: String,
        contents: Either<String, Buffer>,
        mode: Option<u32>,
    ) -> napi::Result<()> {
        let data = bytes_of(contents);
        let r = match mode {
            Some(m) => self.sb.write_file_with_mode(&path, data, m).await,
            None => self.sb.write_file(&path, data).await,
        };
        r.map_err(|e| self.err(e))
    }

    /// Writes many files in one engine round trip; nothing is written if any path is refused.
    #[napi(catch_unwind)]
    pub async fn write_files(&self, files: HashMap<String, Either<String, Buffer>>) -> napi::Result<()> {
        let files: Vec<FileWrite> = files.into_iter().map(|(p, c)| FileWrite::new(p, bytes_of(c))).collect();
        self.sb.write_files(files).await.map_err(|e| self.err(e))
    }

    /// Reads a UTF-8 text file; a non-UTF-8 file is `INVALID_ARGUMENT` (use `readFileBytes`).
    #[napi(catch_unwind)]
    pub async fn read_file(&self, path: String) -> napi::Result<String> {
        self.sb.read_to_string(&path).await.map_err(|e| self.err(e))
    }

    /// Reads a file byte for byte (at most 64 MiB: `TOO_LARGE` above; use `readFileToHost`).
    #[napi(catch_unwind)]
    pub async fn read_file_bytes(&self, path: String) -> napi::Result<Buffer> {
        self.sb.read_file(&path).await.map(Buffer::from).map_err(|e| self.err(e))
    }

    /// Copies a file of any size out to `hostPath`, streamed (never held in memory); the bytes copied.
    #[napi(catch_unwind)]
    pub async fn read_file_to_host(&self, path: String, host_path: String) -> napi::Result<f64> {
        self.sb.read_file_to_host(&path, host_path).await.map(|n| n as f64).map_err(|e| self.err(e))
    }

    /// Writes one file from the host file `hostPath`, streamed (any size), with `mode` or 0644; the bytes written.
    #[napi(catch_unwind)]
    pub async fn write_file_from_host(&self, path: String, host_path: String, mode: Option<u32>) -> napi::Result<f64> {
        let mode = mode.unwrap_or(dagger_sandbox::DEFAULT_FILE_MODE);
        self.sb.write_file_from_host(&path, host_path, mode).await.map(|n| n as f64).map_err(|e| self.err(e))
    }

    /// Deletes a file or directory (recursively); a missing path is `NOT_FOUND`.
    #[napi(catch_unwind)]
    pub async fn delete_file(&self, path: String) -> napi::Result<()> {
        self.sb.delete_file(&path).await.map_err(|e| self.err(e))
    }

    /// Lists a directory, sorted by name.
    #[napi(catch_unwind)]
    pub async fn list_directory(&self, path: String) -> napi::Result<Vec<DirEntry>> {
        let entries = self.sb.list_directory(&path).await.map_err(|e| self.err(e))?;
        Ok(entries.into_iter().map(DirEntry::from).collect())
    }

    /// Makes `path` the working directory of later execs and relative paths (created if missing).
    #[napi(catch_unwind)]
    pub async fn set_workdir(&self, path: String) -> napi::Result<()> {
        self.sb.set_workdir(&path).await.map_err(|e| self.err(e))
    }

    /// Sets one variable for every later exec.
    #[napi]
    pub fn with_env(&self, key: String, value: String) -> napi::Result<()> {
        self.sb.with_env(&key, &value).map_err(|e| self.err(e))
    }

    /// Sets many variables for every later exec; none is set if any is invalid.
    #[napi]
    pub fn with_envs(&self, vars: HashMap<String, String>) -> napi::Result<()> {
        self.sb.with_envs(vars).map_err(|e| self.err(e))
    }

    /// Copies the sandbox directory `containerPath` to `hostPath` on the host.
    #[napi(catch_unwind)]
    pub async fn export_directory(&self, container_path: String, host_path: String) -> napi::Result<()> {
        self.sb.export_directory(&container_path, host_path).await.map_err(|e| self.err(e))
    }

    /// Copies the host directory `hostPath` into the sandbox at `containerPath`, leaving out
    /// `exclude` globs (e.g. `node_modules`, `.git`).
    #[napi(catch_unwind)]
    pub async fn refresh_from_host(
        &self,
        host_path: String,
        container_path: String,
        exclude: Option<Vec<String>>,
    ) -> napi::Result<()> {
        let opts = RefreshOptions::exclude(exclude.unwrap_or_default());
        self.sb.refresh_from_host(host_path, &container_path, opts).await.map_err(|e| self.err(e))
    }

    /// An independent sandbox with the same files, env and workdir; close both.
    #[napi(catch_unwind)]
    pub async fn fork(&self) -> napi::Result<NativeSandbox> {
        let sb = self.sb.fork().await.map_err(|e| self.err(e))?;
        Ok(NativeSandbox { sb })
    }

    /// Frees every engine resource; idempotent. In-flight and later calls reject with `CLOSED`.
    #[napi(catch_unwind)]
    pub async fn close(&self) -> napi::Result<()> {
        self.sb.close().await.map_err(|e| self.err(e))
    }
}

//! The `sandbox/*` methods: params as typed structs (unknown fields refused), each a thin call
//! into the core, results as camelCase JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use dagger_sandbox::{
    CancellationToken, Error, ExecOptions, ExecResult, FileWrite, OutputChunk, RefreshOptions, Sandbox, SandboxConfig,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::protocol::{notification, params, RpcError};
use crate::server::Server;
use crate::utf8::Utf8Stream;

/// How bytes are carried in a JSON string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Utf8,
    Base64,
}

impl Encoding {
    fn decode(self, field: &str, text: String) -> Result<Vec<u8>, RpcError> {
        match self {
            Encoding::Utf8 => Ok(text.into_bytes()),
            Encoding::Base64 => B64
                .decode(text.as_bytes())
                .map_err(|e| RpcError::invalid_params(format!("`{field}`: not valid base64: {e}"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SandboxRef {
    sandbox_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecParams {
    sandbox_id: String,
    command: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    timeout_ms: Option<u64>,
    stdin: Option<String>,
    #[serde(default)]
    stdin_encoding: Encoding,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileParams {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Encoding,
    mode: Option<u32>,
}

impl FileParams {
    /// The file to write; `field` names the content in a base64 error.
    fn into_write(self, field: &str) -> Result<FileWrite, RpcError> {
        let file = FileWrite::new(self.path, self.encoding.decode(field, self.content)?);
        Ok(if let Some(m) = self.mode { file.mode(m) } else { file })
    }
}

/// Splits `sandboxId` off an object of params, naming it when it is missing or not a string.
fn take_sandbox_id(p: Value) -> Result<(String, Value), RpcError> {
    let Value::Object(mut obj) = p else {
        return Err(RpcError::invalid_params(format!("params must be an object, got {p}")));
    };
    match obj.remove("sandboxId") {
        Some(Value::String(id)) => Ok((id, Value::Object(obj))),
        Some(other) => Err(RpcError::invalid_params(format!("`sandboxId`: expected a string, got {other}"))),
        None => Err(RpcError::invalid_params("missing field `sandboxId`")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WriteFilesParams {
    sandbox_id: String,
    files: Vec<FileParams>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadFileParams {
    sandbox_id: String,
    path: String,
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathParams {
    sandbox_id: String,
    path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    sandbox_id: String,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WithEnvParams {
    sandbox_id: String,
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportParams {
    sandbox_id: String,
    container_path: String,
    host_path: PathBuf,
}

/// `sandbox/readFileToHost` and `sandbox/writeFileFromHost`: one file, streamed to or from the host.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HostFileParams {
    sandbox_id: String,
    path: String,
    host_path: PathBuf,
    #[serde(default)]
    mode: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshParams {
    sandbox_id: String,
    host_path: PathBuf,
    container_path: String,
    #[serde(default)]
    exclude: Vec<String>,
}

/// An exec result as the protocol spells it.
pub fn exec_result_json(r: &ExecResult, exec_id: Option<&str>) -> Value {
    let mut v = json!({
        "exitCode": r.exit_code,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "durationMs": r.duration_ms,
        "truncated": r.truncated,
        "stdoutDropped": r.stdout_dropped,
        "stderrDropped": r.stderr_dropped,
    });
    if let Some(id) = exec_id {
        v["execId"] = json!(id);
    }
    v
}

/// The result of `sandbox/create`, `fork` and `connect`.
pub(crate) fn sandbox_json(sb: &Sandbox) -> Value {
    json!({
        "sandboxId": sb.id(),
        "backend": sb.backend(),
        "isolation": sb.isolation(),
        "workdir": sb.workdir(),
        "image": sb.image(),
        "fallbackReason": sb.fallback_reason(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValidateParams {
    /// The project directory on the bridge's host.
    project_dir: PathBuf,
    install: Option<String>,
    test: Option<String>,
    step_timeout_ms: Option<u64>,
    /// The sandbox config, as `sandbox/create` takes it.
    #[serde(default)]
    config: Option<Value>,
}

/// `project/validate`: the main job (dagger-sandbox-validate) in a sandbox of its own, removed
/// at the end; a failing step is a result (`passed: false`), cancellation removes the sandbox.
async fn validate(p: Value, cancel: CancellationToken) -> Result<Value, RpcError> {
    let v: ValidateParams = params(p)?;
    let cfg: SandboxConfig = params(v.config.unwrap_or_else(|| json!({})))?;
    let plan = dagger_sandbox_validate::Plan::for_project(&v.project_dir, v.install.as_deref(), v.test.as_deref())
        .map_err(validate_error)?;
    let mut opts = dagger_sandbox_validate::ValidateOptions { cancel, ..Default::default() };
    if let Some(ms) = v.step_timeout_ms {
        if ms == 0 {
            return Err(RpcError::invalid_params("`stepTimeoutMs` must be at least 1"));
        }
        opts.step_timeout = Duration::from_millis(ms);
    }
    let report = dagger_sandbox_validate::validate(cfg, &plan, opts).await.map_err(validate_error)?;
    Ok(json!(report))
}

/// A validation error as the sandbox error with the same stable code.
fn validate_error(e: dagger_sandbox_validate::ValidateError) -> RpcError {
    use dagger_sandbox_validate::ValidateError as V;
    let err = match e {
        V::Sandbox { source, .. } => source,
        V::Cancelled => Error::Cancelled { sandbox: String::new(), op: "project/validate".into() },
        other => Error::InvalidArgument(other.to_string()),
    };
    err.into()
}

/// Runs one `sandbox/*` method. `cancel` fires on `$/cancelRequest`; creates and forks are never
/// dropped half-way (that could leak a container): they finish, then are closed if cancelled.
pub async fn call(
    server: &Arc<Server>,
    request_id: &Value,
    method: &str,
    p: Value,
    cancel: CancellationToken,
) -> Result<Value, RpcError> {
    let cancelled = || Error::Cancelled { sandbox: String::new(), op: method.to_string() };
    match method {
        "sandbox/create" => {
            let mut p = p;
            if let Some(r) = crate::durable::create_persistent(server, &mut p, &cancel).await {
                return r;
            }
            let cfg: SandboxConfig = params(p)?;
            let sb = Sandbox::create(cfg).await?;
            Ok(sandbox_json(&server.adopt(sb, &cancel).await?))
        }
        "sandbox/fork" => {
            let r: SandboxRef = params(p)?;
            let sb = server.sandbox(&r.sandbox_id)?.fork().await?;
            Ok(sandbox_json(&server.adopt(sb, &cancel).await?))
        }
        "sandbox/exec" => exec(server, request_id, p, cancel).await,
        "sandbox/connect" => crate::durable::connect(server, p, &cancel).await,
        "project/validate" => validate(p, cancel).await,
        // Takes and restores are never dropped half-way, like creates; the rest are quick reads.
        m if crate::snapshots::handles(m) => crate::snapshots::call(server, m, p, &cancel).await,
        _ => {
            // Everything else is safe to drop when cancelled.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(cancelled().into()),
                r = simple(server, method, p) => r,
            }
        }
    }
}

async fn simple(server: &Arc<Server>, method: &str, p: Value) -> Result<Value, RpcError> {
    match method {
        "sandbox/writeFile" => {
            // One file's params are a `writeFiles` entry plus the sandbox id.
            let (sandbox_id, rest) = take_sandbox_id(p)?;
            let file = params::<FileParams>(rest)?.into_write("content")?;
            server.sandbox(&sandbox_id)?.write_files([file]).await?;
            Ok(json!({}))
        }
        "sandbox/writeFiles" => {
            let w: WriteFilesParams = params(p)?;
            let files = w
                .files
                .into_iter()
                .enumerate()
                .map(|(i, f)| f.into_write(&format!("files[{i}].content")))
                .collect::<Result<Vec<_>, _>>()?;
            let n = files.len();
            server.sandbox(&w.sandbox_id)?.write_files(files).await?;
            Ok(json!({"written": n}))
        }
        "sandbox/readFile" => {
            let r: ReadFileParams = params(p)?;
            let bytes = server.sandbox(&r.sandbox_id)?.read_file(&r.path).await?;
            let size = bytes.len();
            let (content, encoding) = match r.encoding {
                Encoding::Base64 => (B64.encode(&bytes), "base64"),
                Encoding::Utf8 => (
                    String::from_utf8(bytes).map_err(|_| {
                        RpcError::from(Error::InvalidArgument(format!(
                            "{} is not valid UTF-8 text; read it with \"encoding\": \"base64\"",
                            r.path
                        )))
                    })?,
                    "utf8",
                ),
            };
            Ok(json!({"content": content, "encoding": encoding, "size": size}))
        }
        "sandbox/deleteFile" => {
            let r: PathParams = params(p)?;
            server.sandbox(&r.sandbox_id)?.delete_file(&r.path).await?;
            Ok(json!({}))
        }
        "sandbox/listDirectory" => {
            let r: ListParams = params(p)?;
            let sb = server.sandbox(&r.sandbox_id)?;
            let path = r.path.unwrap_or_else(|| sb.workdir());
            let entries = sb.list_directory(&path).await?;
            Ok(json!({"entries": entries}))
        }
        "sandbox/setWorkdir" => {
            let r: PathParams = params(p)?;
            let sb = server.sandbox(&r.sandbox_id)?;
            sb.set_workdir(&r.path).await?;
            Ok(json!({"workdir": sb.workdir()}))
        }
        "sandbox/withEnv" => {
            let r: WithEnvParams = params(p)?;
            server.sandbox(&r.sandbox_id)?.with_envs(r.env)?;
            Ok(json!({}))
        }
        "sandbox/readFileToHost" => {
            let r: HostFileParams = params(p)?;
            if r.mode.is_some() {
                return Err(Error::InvalidArgument("readFileToHost takes no mode".into()).into());
            }
            let size = server.sandbox(&r.sandbox_id)?.read_file_to_host(&r.path, &r.host_path).await?;
            Ok(json!({"size": size}))
        }
        "sandbox/writeFileFromHost" => {
            let r: HostFileParams = params(p)?;
            let mode = r.mode.unwrap_or(dagger_sandbox::DEFAULT_FILE_MODE);
            let size = server.sandbox(&r.sandbox_id)?.write_file_from_host(&r.path, &r.host_path, mode).await?;
            Ok(json!({"size": size}))
        }
        "sandbox/exportDirectory" => {
            let r: ExportParams = params(p)?;
            server.sandbox(&r.sandbox_id)?.export_directory(&r.container_path, &r.host_path).await?;
            Ok(json!({}))
        }
        "sandbox/refreshFromHost" => {
            let r: RefreshParams = params(p)?;
            let opts = RefreshOptions::exclude(r.exclude);
            server.sandbox(&r.sandbox_id)?.refresh_from_host(&r.host_path, &r.container_path, opts).await?;
            Ok(json!({}))
        }
        other => match crate::durable::call(server, other, p).await {
            Some(r) => r,
            None => Err(RpcError {
                code: crate::protocol::codes::METHOD_NOT_FOUND,
                message: format!("method not found: {other}"),
                data: Some(json!({"method": other})),
            }),
        },
    }
}

/// `sandbox/exec`: cancellation goes to the core, which kills the command before failing.
async fn exec(
    server: &Arc<Server>,
    request_id: &Value,
    p: Value,
    cancel: CancellationToken,
) -> Result<Value, RpcError> {
    let e: ExecParams = params(p)?;
    let sb = server.sandbox(&e.sandbox_id)?;
    let exec_id = format!("exec-{}", server.exec_counter.fetch_add(1, Ordering::Relaxed) + 1);
    let mut opts = ExecOptions::new().cancel(cancel);
    opts.env = e.env;
    opts.cwd = e.cwd;
    opts.timeout = e.timeout_ms.map(Duration::from_millis);
    if let Some(stdin) = e.stdin {
        opts.stdin = Some(e.stdin_encoding.decode("stdin", stdin)?);
    }
    let forwarder = if e.stream {
        let (tx, rx) = mpsc::channel(64);
        opts.output = Some(tx);
        Some(tokio::spawn(forward_output(server.clone(), rx, exec_id.clone(), request_id.clone())))
    } else {
        None
    };
    let result = sb.exec(&e.command, opts).await;
    if let Some(f) = forwarder {
        // Every notification is written before the response.
        let _ = f.await;
    }
    Ok(exec_result_json(&result?, Some(&exec_id)))
}

/// Turns output chunks into `exec/output` notifications, keeping UTF-8 characters whole.
async fn forward_output(server: Arc<Server>, mut rx: mpsc::Receiver<OutputChunk>, exec_id: String, request_id: Value) {
    let mut out = Utf8Stream::default();
    let mut err = Utf8Stream::default();
    let send = |stream: &'static str, data: String| {
        let msg = notification(
            "exec/output",
            json!({"execId": exec_id, "requestId": request_id, "stream": stream, "data": data}),
        );
        let out = server.out.clone();
        async move { out.send(&msg).await }
    };
    while let Some(chunk) = rx.recv().await {
        let (decoder, name) = match chunk.stream {
            dagger_sandbox::OutputStream::Stdout => (&mut out, "stdout"),
            dagger_sandbox::OutputStream::Stderr => (&mut err, "stderr"),
        };
        let text = decoder.push(&chunk.data);
        if !text.is_empty() {
            send(name, text).await;
        }
    }
    for (decoder, name) in [(&mut out, "stdout"), (&mut err, "stderr")] {
        let rest = decoder.finish();
        if !rest.is_empty() {
            send(name, rest).await;
        }
    }
}

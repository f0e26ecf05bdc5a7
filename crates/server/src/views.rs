//! The JSON shapes of the REST API (docs/rest-api.md): request bodies, the session object and
//! exec results, and what the daemon keeps in a session's `metadata` column.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dagger_sandbox::{CaCertificates, Caches, ExecResult, PortMapping, SandboxConfig};
use dagger_sandbox_store::Session;
use serde::{Deserialize, Serialize};

/// The body of `POST /api/sandbox`; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRequest {
    /// A template name (`node`, `python`, or one from `templates.json`).
    pub template: Option<String>,
    /// The image; wins over the template's.
    pub image: Option<String>,
    /// `auto`, `docker`, `dagger` or `local`.
    pub backend: Option<String>,
    /// A project the session belongs to.
    pub project_id: Option<String>,
    /// A user the session belongs to.
    pub user_id: Option<String>,
    /// Lifetime in seconds (default 3600).
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub ttl_seconds: Option<u64>,
    /// Container ports to forward to 127.0.0.1; needs `command`.
    #[serde(default, deserialize_with = "crate::whole::option_list")]
    pub ports: Option<Vec<u16>>,
    /// A command run as a service from the sandbox state.
    pub command: Option<String>,
    /// Environment for every exec and the service.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory (default: the template's, else `/app`).
    pub working_directory: Option<String>,
    /// Free-form data kept with the session (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// With backend `auto`, allow the local backend (process isolation: commands run on the host as
    /// the daemon's user) when no container engine answers. Off unless asked: a REST caller must
    /// never get host execution it did not choose.
    pub fallback: Option<bool>,
    /// Certificate authorities to trust besides the image's: `"host"` or PEM paths on the
    /// daemon's host (default: the daemon's `DAGGER_SANDBOX_CA_CERTIFICATES`).
    pub ca_certificates: Option<CaCertificates>,
    /// Dependency caches to mount: `true`, `false` (default) or a list of kinds.
    pub caches: Option<Caches>,
    /// A snapshot (id or name) to start from instead of an image: its files, env and workdir.
    pub from_snapshot: Option<String>,
}

/// The body of `POST /api/sandbox/:id/exec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    /// The command, run with `sh -c`.
    pub command: String,
    /// Variables for this call only.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory for this call.
    pub cwd: Option<String>,
    /// Timeout for this call in milliseconds (default: the sandbox's, 600000).
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub timeout_ms: Option<u64>,
    /// Text fed to standard input.
    pub stdin: Option<String>,
}

/// The answer of an exec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecView {
    /// The command's exit code.
    pub exit_code: i64,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Whether output was cut in the middle.
    pub truncated: bool,
}

impl From<ExecResult> for ExecView {
    fn from(r: ExecResult) -> Self {
        ExecView {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            duration_ms: r.duration_ms,
            truncated: r.truncated,
        }
    }
}

/// What the daemon keeps in a session's `metadata` column: what the API shows, and the config a
/// restarted daemon needs to take the sandbox back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    pub(crate) isolation: String,
    pub(crate) image: Option<String>,
    pub(crate) template: Option<String>,
    pub(crate) command: Option<String>,
    #[serde(default)]
    pub(crate) ports: Vec<PortMapping>,
    #[serde(default = "empty_object")]
    pub(crate) user: serde_json::Value,
    /// The config to reattach with; its env holds no values (secrets stay out of the database).
    pub(crate) config: Option<SandboxConfig>,
    /// The names of the env the session was created with; the values live only in the daemon's
    /// memory and in the sandbox's container.
    #[serde(default)]
    pub(crate) env_names: Vec<String>,
    /// Who stopped a `stopped` session: `user` (resumed only when asked) or `idle` (resumed by
    /// the next call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stopped_by: Option<String>,
}

/// `{}`, the metadata of a session that was given none.
pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Meta {
    pub(crate) fn of(s: &Session) -> Meta {
        serde_json::from_value(s.metadata.clone()).unwrap_or_else(|e| {
            tracing::warn!(session = %s.id, "unreadable session metadata: {e}");
            Meta {
                isolation: "unknown".into(),
                image: None,
                template: None,
                command: None,
                ports: vec![],
                user: empty_object(),
                config: None,
                env_names: vec![],
                stopped_by: None,
            }
        })
    }
}

/// A session as the API shows it (docs/rest-api.md, "The session object").
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The session id, also the sandbox id.
    pub id: String,
    /// `active`, `stopped` (files kept, nothing running), `paused` or `terminated`.
    pub status: String,
    /// Who stopped a `stopped` session: `user` or `idle`; `null` otherwise.
    pub stopped_by: Option<String>,
    /// The engine it runs on.
    pub backend: String,
    /// `container` or `process`.
    pub isolation: String,
    /// The image, or `null` on the local backend.
    pub image: Option<String>,
    /// The template it was made from.
    pub template: Option<String>,
    /// Its project.
    pub project_id: Option<String>,
    /// Its user.
    pub user_id: Option<String>,
    /// The container id (or host directory on the local backend).
    pub container_id: Option<String>,
    /// The working directory.
    pub working_directory: String,
    /// The service command.
    pub command: Option<String>,
    /// Forwarded ports.
    pub ports: Vec<PortMapping>,
    /// The URL of the first port.
    pub host_url: Option<String>,
    /// The caller's metadata.
    pub metadata: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_active_at: DateTime<Utc>,
    /// When the reaper ends it.
    pub expires_at: DateTime<Utc>,
    /// Why it ended.
    pub ended_reason: Option<String>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        let meta = Meta::of(s);
        SessionView {
            id: s.id.clone(),
            status: s.status.as_str().to_string(),
            stopped_by: if s.status == dagger_sandbox_store::Status::Stopped { meta.stopped_by } else { None },
            backend: s.provider.as_str().to_string(),
            isolation: meta.isolation,
            image: meta.image,
            template: meta.template,
            project_id: s.project_id.clone(),
            user_id: s.user_id.clone(),
            container_id: s.container_id.clone(),
            working_directory: s.working_directory.clone(),
            command: meta.command,
            ports: meta.ports,
            host_url: s.host_url.clone(),
            metadata: meta.user,
            created_at: s.created_at,
            last_active_at: s.last_active_at,
            expires_at: s.expires_at,
            ended_reason: s.ended_reason.clone(),
        }
    }
}

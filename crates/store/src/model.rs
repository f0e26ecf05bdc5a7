//! The session row and its enums as Rust values, with the text forms the table stores.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Working directory of a session whose config names none (the column's default too).
pub const DEFAULT_WORKING_DIRECTORY: &str = "/app";

/// Which engine runs a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A Dagger engine container.
    Dagger,
    /// A plain Docker container.
    Docker,
    /// A directory on the host.
    Local,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::Dagger, Provider::Docker, Provider::Local];

    /// The text stored in the table (`"dagger"`, `"docker"`, `"local"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Dagger => "dagger",
            Provider::Docker => "docker",
            Provider::Local => "local",
        }
    }
}

impl FromStr for Provider {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            StoreError::InvalidArgument(format!("unknown provider '{s}' (expected dagger, docker or local)"))
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a session is in its life; `Terminated` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Running and usable.
    Active,
    /// Kept but not running (not used by the daemon; kept for rows of older schemas).
    Paused,
    /// Its sandbox is stopped: files kept, nothing running, resumed on demand.
    Stopped,
    /// Ended; `ended_reason` says why.
    Terminated,
}

impl Status {
    /// Every status, in a stable order.
    pub const ALL: [Status; 4] = [Status::Active, Status::Paused, Status::Stopped, Status::Terminated];

    /// The text stored in the table (`"active"`, `"paused"`, `"stopped"`, `"terminated"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Terminated => "terminated",
        }
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Status::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            StoreError::InvalidArgument(format!(
                "unknown status '{s}' (expected active, paused, stopped or terminated)"
            ))
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `sandbox_sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unique id (the sandbox id the daemon hands out).
    pub id: String,
    /// Who created it, when the daemon knows.
    pub user_id: Option<String>,
    /// Which project it belongs to, when given.
    pub project_id: Option<String>,
    /// The engine that runs it.
    pub provider: Provider,
    /// Container id (or host directory for `local`) once the engine made it.
    pub container_id: Option<String>,
    /// Where it is in its life.
    pub status: Status,
    /// URL of the engine host, when relevant.
    pub host_url: Option<String>,
    /// Working directory inside the sandbox.
    pub working_directory: String,
    /// Everything else about the session; always a JSON object.
    pub metadata: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_active_at: DateTime<Utc>,
    /// When the reaper may end it.
    pub expires_at: DateTime<Utc>,
    /// Why it ended; set once, by the first termination.
    pub ended_reason: Option<String>,
}

impl Session {
    /// A new active session created at `now` and expiring at `expires_at`, in [`DEFAULT_WORKING_DIRECTORY`]
    /// with empty metadata; times are truncated to the millisecond the table keeps.
    pub fn new(id: impl Into<String>, provider: Provider, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Session {
        let now = truncate_to_millis(now);
        Session {
            id: id.into(),
            user_id: None,
            project_id: None,
            provider,
            container_id: None,
            status: Status::Active,
            host_url: None,
            working_directory: DEFAULT_WORKING_DIRECTORY.to_string(),
            metadata: serde_json::Value::Object(Default::default()),
            created_at: now,
            last_active_at: now,
            expires_at: truncate_to_millis(expires_at),
            ended_reason: None,
        }
    }
}

/// Which sessions [`crate::Store::list`] returns; the default is every active or paused session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Also return terminated sessions.
    pub include_terminated: bool,
    /// Only sessions of this project.
    pub project_id: Option<String>,
    /// Only sessions of this user.
    pub user_id: Option<String>,
}

/// A partial change to a session for [`crate::Store::update`]: only `Some` fields change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionUpdate {
    /// New container id.
    pub container_id: Option<String>,
    /// New engine host URL.
    pub host_url: Option<String>,
    /// New status: active, paused or stopped (ending a session is [`crate::Store::terminate`]'s job).
    pub status: Option<Status>,
    /// New metadata; replaces the whole object.
    pub metadata: Option<serde_json::Value>,
    /// New expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// New last-activity time.
    pub last_active_at: Option<DateTime<Utc>>,
}

/// `t` without the sub-millisecond digits the table does not keep.
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// The stored text of a time: fixed-width RFC 3339, so the table's text order is time order.
pub(crate) fn time_to_text(t: DateTime<Utc>) -> Result<String> {
    let year = chrono::Datelike::year(&t);
    if !(0..=9999).contains(&year) {
        return Err(StoreError::InvalidArgument(format!("time {t} is outside the years 0000-9999 the store keeps")));
    }
    Ok(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Parses a stored time.
pub(crate) fn time_from_text(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("bad time '{s}': {e}"))
}

/// The stored text of metadata, refusing anything but a JSON object.
pub(crate) fn metadata_to_text(v: &serde_json::Value) -> Result<String> {
    if !v.is_object() {
        let kind = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => unreachable!(),
        };
        return Err(StoreError::InvalidArgument(format!("metadata must be a JSON object, got {kind}")));
    }
    serde_json::to_string(v).map_err(|e| StoreError::InvalidArgument(format!("metadata does not serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn enums_round_trip_through_their_text_and_refuse_unknown_words() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        let err = "Docker".parse::<Provider>().unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("unknown provider 'Docker'"), "{err}");
        assert!("Stopped".parse::<Status>().is_err());
    }

    #[test]
    fn stored_times_are_fixed_width_millisecond_utc() {
        let t = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap() + chrono::Duration::nanoseconds(123_456_789);
        let text = time_to_text(t).unwrap();
        assert_eq!(text, "2024-02-29T23:59:58.123Z");
        assert_eq!(time_from_text(&text).unwrap(), truncate_to_millis(t));
        // Fixed width keeps text order equal to time order, which the expiry query relies on.
        let later = time_to_text(t + chrono::Duration::milliseconds(900)).unwrap();
        assert!(later > text);
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(time_to_text(far).unwrap_err().code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert_eq!(metadata_to_text(&serde_json::json!({"a": [1, 2]})).unwrap(), r#"{"a":[1,2]}"#);
        for bad in [serde_json::json!([1]), serde_json::json!("x"), serde_json::json!(null), serde_json::json!(3)] {
            let err = metadata_to_text(&bad).unwrap_err();
            assert!(err.to_string().contains("metadata must be a JSON object"), "{err}");
        }
    }
}

//! Keeping env values out of the session database. Rows written before the daemon stored env
//! names only still hold values in their reattach config: those are removed when the session ends,
//! and on start for sessions that had already ended (the store overwrites freed pages with zeros).

use dagger_sandbox_store::{Session, SessionUpdate, Status};

use super::Sessions;
use crate::error::ApiError;

/// Whether a row's reattach config holds env values.
fn holds_env_values(s: &Session) -> bool {
    s.metadata["config"]["env"].as_object().is_some_and(|env| !env.is_empty())
}

impl Sessions {
    /// Removes the env values from an ended session's row; whether it had any.
    pub(super) async fn scrub_env(&self, s: &Session) -> Result<bool, ApiError> {
        if !holds_env_values(s) {
            return Ok(false);
        }
        let mut metadata = s.metadata.clone();
        metadata["config"]["env"] = serde_json::json!({});
        let change = SessionUpdate { metadata: Some(metadata), ..Default::default() };
        let id = s.id.clone();
        self.db(move |st| st.update(&id, &change)).await?;
        Ok(true)
    }

    /// Removes env values from every ended session's row; how many rows held some.
    pub async fn scrub_ended(&self) -> Result<usize, ApiError> {
        let mut n = 0;
        for s in self.list(true).await?.iter().filter(|s| s.status == Status::Terminated) {
            n += usize::from(self.scrub_env(s).await?);
        }
        Ok(n)
    }
}

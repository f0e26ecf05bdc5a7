//! The snapshot routes of the REST API (docs/rest-api.md, "Snapshots").

use reqwest::Method;
use serde_json::{json, Value};

use super::{encode, Client};

impl Client {
    /// `POST /api/sandbox/:id/snapshot`: takes a snapshot of a session.
    pub async fn snapshot(&self, id: &str, name: Option<&str>) -> super::Result<Value> {
        let path = format!("/api/sandbox/{}/snapshot", encode(id));
        self.json(self.request(Method::POST, &path).json(&json!({ "name": name }))).await
    }

    /// `GET /api/snapshot`: every snapshot, oldest first.
    pub async fn snapshots(&self) -> super::Result<Vec<Value>> {
        let v = self.json(self.request(Method::GET, "/api/snapshot")).await?;
        Ok(v.get("snapshots").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// `GET /api/snapshot/:ref`: one snapshot by id or name.
    pub async fn get_snapshot(&self, reference: &str) -> super::Result<Value> {
        self.json(self.request(Method::GET, &format!("/api/snapshot/{}", encode(reference)))).await
    }

    /// `DELETE /api/snapshot/:ref`: deletes a snapshot; returns it.
    pub async fn delete_snapshot(&self, reference: &str) -> super::Result<Value> {
        self.json(self.request(Method::DELETE, &format!("/api/snapshot/{}", encode(reference)))).await
    }
}

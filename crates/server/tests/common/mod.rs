//! Shared helpers: an in-process daemon on 127.0.0.1:0 with a temp state dir, an HTTP client with
//! its token, and a guard that removes every container of that daemon even when a test fails.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use dagger_sandbox::LABEL_OWNER;
use dagger_sandbox_server::{start, RunningServer, ServeOptions};
use serde_json::Value;

/// The busybox test image (built locally; never pulled).
pub const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";

/// A daemon serving in this test, and a client for it.
pub struct Daemon {
    pub server: RunningServer,
    pub http: reqwest::Client,
}

impl Daemon {
    pub async fn start(state_dir: &Path, reap: Duration) -> Daemon {
        let server = start(ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            state_dir: state_dir.to_path_buf(),
            reap_interval: reap,
            pools: Vec::new(),
        })
        .await
        .expect("daemon starts");
        Daemon { server, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// A request with the bearer token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.server.token)
    }

    /// Sends a JSON request and returns (status, body as JSON or the text as a JSON string).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a busybox session on docker and returns its JSON.
    pub async fn create(&self, extra: Value) -> Value {
        let mut body = serde_json::json!({"image": BUSYBOX, "backend": "docker"});
        body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        let (status, v) = self.call(reqwest::Method::POST, "/api/sandbox", Some(body)).await;
        assert_eq!(status, 201, "create: {v}");
        v
    }

    pub fn owner(&self) -> String {
        format!("daemon:{}", self.server.state_dir.display())
    }
}

/// The Docker client of the tests (the engine must be there: these tests never skip).
pub fn docker() -> Docker {
    Docker::connect_with_defaults().expect("docker client")
}

/// Whether a container exists (in any state).
pub async fn container_exists(id: &str) -> bool {
    docker().inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>).await.is_ok()
}

/// Ids of the containers labelled with `owner`.
pub async fn containers_of(owner: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER}={owner}")])]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    docker().list_containers(Some(opts)).await.unwrap().into_iter().filter_map(|c| c.id).collect()
}

/// Removes every container of `owner`, on a runtime of its own so it also works while a test
/// unwinds from a panic.
pub fn remove_containers_of(owner: &str) {
    let owner = owner.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for id in containers_of(&owner).await {
                let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                let _ = docker().remove_container(&id, Some(opts)).await;
            }
        });
    })
    .join()
    .unwrap();
}

/// Removes every container of a state dir's daemon when dropped.
pub struct Cleanup(pub String);

impl Cleanup {
    pub fn for_dir(dir: &Path) -> Cleanup {
        Cleanup(format!("daemon:{}", std::fs::canonicalize(dir).unwrap().display()))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_containers_of(&self.0);
    }
}

/// A temp state dir and its cleanup guard (the guard runs before the dir is removed).
pub fn state_dir() -> (Cleanup, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Cleanup::for_dir(dir.path()), dir)
}

/// Polls `f` every 100 ms until it is true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

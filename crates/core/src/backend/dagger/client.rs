//! The HTTP transport to a Dagger session. The SDK's default client honours `HTTP_PROXY`/`ALL_PROXY`
//! even for the session on 127.0.0.1, so behind a corporate proxy every query went to the proxy and
//! failed. This one never uses a proxy: the session is always on loopback.
//!
//! It keeps no idle connections either. A pooled connection is driven by a task on the runtime
//! that opened it; sandboxes are used from many runtimes (every Node call, every test case has
//! its own), and a query that picked up a connection whose runtime had ended failed with "error
//! sending request" (seen live). A loopback connect costs tens of microseconds.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use dagger_sdk::core::gql_client::GraphQLErrorMessage;
use dagger_sdk::core::graphql_client::{DynGraphQLClient, GraphQLClient, GraphQLError};
use serde::Deserialize;

/// Idle connections kept: none (see the module doc).
const POOL_IDLE: usize = 0;

/// A GraphQL client for one session's `http://127.0.0.1:<port>/query`.
pub(crate) struct SessionClient {
    http: reqwest::Client,
    url: String,
    auth: String,
}

/// The response envelope of a GraphQL query.
#[derive(Deserialize)]
struct Response {
    data: Option<serde_json::Value>,
    errors: Option<Vec<GraphQLErrorMessage>>,
}

impl SessionClient {
    /// A client for the session on `port` with `token` (HTTP Basic, the token as user name).
    pub fn new(port: u16, token: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(POOL_IDLE)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("building the HTTP client for the Dagger session: {e}"))?;
        let auth = format!("Basic {}", base64::engine::general_purpose::URL_SAFE.encode(format!("{token}:")));
        Ok(SessionClient { http, url: format!("http://127.0.0.1:{port}/query"), auth })
    }

    /// The client as the SDK's query root wants it.
    pub fn into_dyn(self) -> DynGraphQLClient {
        Arc::new(self)
    }
}

/// Turns a response into the SDK's result shape: errors win (with the engine's extensions, so an
/// `EXEC_ERROR` keeps its exit code and output), then the data.
pub(crate) fn interpret(status: u16, body: &[u8]) -> Result<Option<serde_json::Value>, GraphQLError> {
    let parsed: Response = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            let shown = super::error::shorten(&String::from_utf8_lossy(body));
            return Err(GraphQLError::HttpError(format!(
                "Failed to parse response (HTTP {status}): {e}. The response body is: {shown}"
            )));
        }
    };
    if let Some(fields) = parsed.errors.filter(|f| !f.is_empty()) {
        let message = fields[0].message.clone();
        return Err(GraphQLError::DomainError { message, fields });
    }
    if !(200..300).contains(&status) {
        return Err(GraphQLError::HttpError(format!("the session answered HTTP {status}")));
    }
    Ok(parsed.data)
}

/// An error with its chain of causes (reqwest's own text is only "error sending request").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        src = c.source();
    }
    s
}

#[async_trait]
impl GraphQLClient for SessionClient {
    async fn query(&self, query: &str) -> Result<Option<serde_json::Value>, GraphQLError> {
        let body = serde_json::json!({ "query": query, "variables": {} });
        let resp = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .json(&body)
            .send()
            .await
            .map_err(|e| GraphQLError::HttpError(with_causes(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| GraphQLError::HttpError(format!("reading the answer: {}", with_causes(&e))))?;
        interpret(status, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagger_sdk::core::gql_client::GraphQlExtension;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves one canned answer per connection on loopback, counting connections.
    fn serve(answer: &'static str) -> (u16, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn queries_go_straight_to_the_session_even_with_a_proxy_configured() {
        let (session, session_hits) = serve(r#"{"data":{"version":"v0.21.8"}}"#);
        let (proxy, proxy_hits) = serve(r#"{"errors":[{"message":"went through the proxy"}]}"#);
        // What a corporate machine has set; the SDK's own client sends loopback traffic there.
        for k in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::set_var(k, format!("http://127.0.0.1:{proxy}"));
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
        let sdk_client = dagger_sdk::core::graphql_client::DefaultGraphQLClient::new(
            &dagger_sdk::core::connect_params::ConnectParams::new(u64::from(session), "t"),
            &dagger_sdk::Config::default(),
        );
        let sdk_answer = sdk_client.query("{version}").await;
        let ours = SessionClient::new(session, "t").unwrap().query("{version}").await;
        for k in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::remove_var(k);
        }
        // The bug, reproduced: the SDK's client asked the proxy.
        assert!(proxy_hits.load(Ordering::SeqCst) >= 1, "the SDK client did not use the proxy: {sdk_answer:?}");
        assert!(sdk_answer.is_err());
        // The fix: ours reached the session directly, and only once.
        assert_eq!(ours.unwrap().unwrap()["version"], "v0.21.8");
        assert_eq!(session_hits.load(Ordering::SeqCst), 1);
        assert_eq!(proxy_hits.load(Ordering::SeqCst), 1, "our client must not touch the proxy");
    }

    /// Serves `{"data":{"n":1}}` on keep-alive connections: one response per request read.
    fn serve_keep_alive() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        let body = r#"{"data":{"n":1}}"#;
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                });
            }
        });
        port
    }

    #[test]
    fn one_client_works_from_runtimes_that_come_and_go() {
        // As sandboxes are used: one session client, queries from runtimes that come and go on
        // several threads at once (every test case, every Node call has its own). A connection
        // pooled by one runtime and picked up by another as the first shuts down failed live with
        // "dispatch task is gone: runtime dropped the dispatch task".
        let port = serve_keep_alive();
        let client = Arc::new(SessionClient::new(port, "t").unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                std::thread::spawn(move || {
                    for round in 0..100 {
                        let rt =
                            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
                        let c = client.clone();
                        let got = rt.block_on(async move { c.query("{n}").await });
                        assert_eq!(got.unwrap_or_else(|e| panic!("thread {t} round {round}: {e}")).unwrap()["n"], 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn exec_errors_keep_their_extensions_and_garbage_is_an_http_error() {
        let body = br#"{"data":null,"errors":[{"message":"exit code: 139","path":["container"],
            "extensions":{"_type":"EXEC_ERROR","cmd":["sh"],"exitCode":139,"stdout":"o","stderr":"e"}}]}"#;
        match interpret(200, body) {
            Err(GraphQLError::DomainError { message, fields }) => {
                assert_eq!(message, "exit code: 139");
                assert!(matches!(fields[0].extensions, Some(GraphQlExtension::ExecError { exit_code: 139, .. })));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(interpret(502, b"<html>bad gateway</html>"), Err(GraphQLError::HttpError(m)) if m.contains("HTTP 502"))
        );
        assert!(matches!(interpret(500, br#"{"data":null}"#), Err(GraphQLError::HttpError(_))));
        assert_eq!(interpret(200, br#"{"data":{"a":1}}"#).unwrap().unwrap()["a"], 1);
    }
}

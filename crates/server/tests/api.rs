//! The REST API against a real Docker engine, through HTTP, as the CLI and scripts use it.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const REAP: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_calls_need_the_token_and_open_routes_do_not() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    for path in ["/api/health", "/api/sandbox", "/api/sandbox/sbx-000000000000/logs"] {
        let r = d.http.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "UNAUTHORIZED", "{path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("token"), "{v}");
        let r = d.http.get(d.url(path)).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    // Only the log stream takes the token in its URL.
    let with_query = |p: &str| format!("{}?token={}", d.url(p), d.server.token);
    assert_eq!(d.http.get(with_query("/api/sandbox")).send().await.unwrap().status(), 401);
    assert_eq!(d.http.get(with_query("/api/sandbox/sbx-000000000000/logs")).send().await.unwrap().status(), 404);

    let (status, health) = d.call(Method::GET, "/api/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pid"], std::process::id());

    // The identity proof needs no token and proves the daemon holds it without revealing it.
    let nonce = dagger_sandbox_server::auth::new_nonce();
    let r = d.http.get(d.url(&format!("/api/identity?nonce={nonce}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(!body.contains(&d.server.token), "the proof must not reveal the token");
    let proof: Value = serde_json::from_str(&body).unwrap();
    let proof = proof["proof"].as_str().unwrap();
    assert!(dagger_sandbox_server::auth::proof_matches(&d.server.token, &nonce, proof), "{body}");
    assert!(!dagger_sandbox_server::auth::proof_matches("another-token", &nonce, proof));
    for bad in ["", "?nonce=", "?nonce=xyz", "?nonce=0123"] {
        let r = d.http.get(d.url(&format!("/api/identity{bad}"))).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "INVALID_ARGUMENT", "{bad}");
    }

    let page = d.http.get(d.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(!page.text().await.unwrap().contains(&d.server.token), "the page must not reveal the token");
    let metrics = d.http.get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in ["dagger_sandbox_sessions{status=\"active\"} 0", "dagger_sandbox_execs_total{backend=\"docker\"}"] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let r = d.http.get(d.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "NOT_FOUND");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_documented_route_is_served() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let doc: Value = d.http.get(d.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = dagger_sandbox_server::openapi::documented_routes(&doc);
    assert!(routes.len() >= 14, "{routes:?}");
    for (method, path) in routes {
        let concrete = path.replace("{id}", "sbx-000000000000");
        let m: Method = method.parse().unwrap();
        // An invalid body for the routes that take one, so nothing is created.
        let r = d.req(m.clone(), &concrete).body(r#"{"bogus": 1}"#).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not served");
        assert!(!text.contains("no route"), "{method} {path} is documented but not served: {text}");
    }
    assert!(containers_of(&d.owner()).await.is_empty());
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_daemon_refuses_a_public_address_and_a_second_daemon_on_its_state_dir() {
    let (_cleanup, dir) = state_dir();
    let opts = |addr: &str| dagger_sandbox_server::ServeOptions {
        addr: addr.parse().unwrap(),
        state_dir: dir.path().to_path_buf(),
        reap_interval: REAP,
        pools: Vec::new(),
    };
    let err = dagger_sandbox_server::start(opts("0.0.0.0:0")).await.err().expect("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
    let first = dagger_sandbox_server::start(opts("127.0.0.1:0")).await.unwrap();
    let info = dagger_sandbox_server::state::read_daemon_info(dir.path()).expect("daemon.json written");
    assert_eq!(info.addr, first.addr.to_string());
    let err = dagger_sandbox_server::start(opts("127.0.0.1:0")).await.err().expect("second daemon refused");
    assert!(format!("{err:#}").contains("already running"), "{err:#}");
    first.shutdown().await;
    assert!(dagger_sandbox_server::state::read_daemon_info(dir.path()).is_none(), "daemon.json removed on shutdown");
    let again = dagger_sandbox_server::start(opts("127.0.0.1:0")).await.unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_lives_through_create_exec_files_and_delete() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let s = d
        .create(
            json!({"projectId": "demo", "metadata": {"ticket": 7}, "env": {"GREETING": "hello"}, "ttlSeconds": 600}),
        )
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sbx-"), "{s}");
    assert_eq!(s["status"], "active");
    assert_eq!(s["backend"], "docker");
    assert_eq!(s["isolation"], "container");
    assert_eq!(s["image"], BUSYBOX);
    assert_eq!(s["projectId"], "demo");
    assert_eq!(s["workingDirectory"], "/app");
    assert_eq!(s["metadata"], json!({"ticket": 7}));
    for key in ["template", "userId", "command", "hostUrl", "endedReason"] {
        assert!(s.get(key).is_some_and(Value::is_null), "{key} must be present and null: {s}");
    }
    let container = s["containerId"].as_str().unwrap().to_string();
    assert!(container_exists(&container).await);

    let (status, got) = d.call(Method::GET, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((status, &got["id"]), (200, &s["id"]));
    let (_, list) = d.call(Method::GET, "/api/sandbox", None).await;
    assert!(list["sandboxes"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()), "{list}");

    let exec_path = format!("/api/sandbox/{id}/exec");
    let exec = |body: Value| d.call(Method::POST, &exec_path, Some(body));
    let (status, r) = exec(json!({"command": "echo $GREETING from $(pwd); echo oops >&2; exit 3"})).await;
    assert_eq!(status, 200, "a non-zero exit is a result: {r}");
    assert_eq!(r["exitCode"], 3);
    assert_eq!(r["stdout"], "hello from /app\n");
    assert_eq!(r["stderr"], "oops\n");
    assert_eq!(r["truncated"], false);
    let (_, r) =
        exec(json!({"command": "cat; echo \" $X\"", "stdin": "piped", "env": {"X": "y"}, "cwd": "/tmp"})).await;
    assert_eq!(r["stdout"], "piped y\n", "{r}");
    let (status, r) = exec(json!({"command": "sleep 5", "timeoutMs": 300})).await;
    assert_eq!((status, r["error"]["code"].as_str()), (504, Some("TIMEOUT")), "{r}");

    // Files are byte-exact both ways, and the mode is applied.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let put = d.req(Method::PUT, &format!("/api/sandbox/{id}/files?path=bin/data.bin&mode=750")).body(bytes.clone());
    assert_eq!(put.send().await.unwrap().status(), 204);
    let got = d.req(Method::GET, &format!("/api/sandbox/{id}/files?path=/app/bin/data.bin")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    let (_, r) = exec(json!({"command": "stat -c %a bin/data.bin"})).await;
    assert_eq!(r["stdout"], "750\n");
    let (status, r) = d.call(Method::GET, &format!("/api/sandbox/{id}/files?path=/nope"), None).await;
    assert_eq!((status, r["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{r}");
    let (status, r) = d.call(Method::GET, &format!("/api/sandbox/{id}/files"), None).await;
    assert_eq!((status, r["error"]["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{r}");

    // Extend moves the expiry forward from max(expiresAt, now).
    let before = chrono::DateTime::parse_from_rfc3339(s["expiresAt"].as_str().unwrap()).unwrap();
    let (status, ext) =
        d.call(Method::POST, &format!("/api/sandbox/{id}/extend"), Some(json!({"ttlSeconds": 60}))).await;
    assert_eq!(status, 200, "{ext}");
    let after = chrono::DateTime::parse_from_rfc3339(ext["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((after - before).num_seconds(), 60);

    // The log has every exec as `$ command`, its output and its exit code.
    let text = d.req(Method::GET, &format!("/api/sandbox/{id}/logs")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""stream":"system","text":"$ echo $GREETING"#), "{text}");
    assert!(text.contains(r#""stream":"stdout","text":"hello from /app\n""#), "{text}");
    assert!(text.contains("exit code 3"), "{text}");
    assert!(text.contains("event: end"), "{text}");

    // DELETE removes the container for real before it answers.
    let (status, gone) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!((gone["status"].as_str(), gone["endedReason"].as_str()), (Some("terminated"), Some("stopped")));
    assert!(!container_exists(&container).await, "the container must be gone from the engine");
    let (status, again) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert_eq!((status, &again), (200, &gone), "stopping a terminated session changes nothing");
    let (status, r) = exec(json!({"command": "true"})).await;
    assert_eq!((status, r["error"]["code"].as_str()), (409, Some("SESSION_ENDED")), "{r}");
    let (_, list) = d.call(Method::GET, "/api/sandbox", None).await;
    assert!(!list["sandboxes"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()));
    let (_, list) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
    assert!(list["sandboxes"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()));
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_ids_are_404_and_bad_input_is_400_with_nothing_created() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    for (m, path, body) in [
        (Method::GET, "/api/sandbox/sbx-000000000000", None),
        (Method::DELETE, "/api/sandbox/sbx-000000000000", None),
        (Method::POST, "/api/sandbox/sbx-000000000000/exec", Some(json!({"command": "true"}))),
        (Method::POST, "/api/sandbox/sbx-000000000000/extend", Some(json!({"ttlSeconds": 5}))),
        (Method::GET, "/api/sandbox/sbx-000000000000/files?path=/a", None),
    ] {
        let (status, v) = d.call(m.clone(), path, body).await;
        assert_eq!((status, v["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{m} {path}: {v}");
    }
    let raw = |body: &'static str| d.req(Method::POST, "/api/sandbox").body(body).send();
    for (body, needle) in [
        ("{not json", "create request"),
        (r#"{"imgae": "busybox"}"#, "imgae"),
        (r#"{"ports": [8080]}"#, "command"),
        (r#"{"template": "cobol"}"#, "unknown template"),
        (r#"{"backend": "podman"}"#, "podman"),
        (r#"{"ttlSeconds": 0}"#, "ttlSeconds"),
        (r#"{"metadata": [1]}"#, "metadata"),
        (r#"{"image": "dagger-sandbox-test/busybox:latest", "workingDirectory": "relative"}"#, "absolute"),
    ] {
        let r = raw(body).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT", "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    let (_, list) = d.call(Method::GET, "/api/sandbox?all=true", None).await;
    assert_eq!(list["sandboxes"], json!([]), "bad input must create nothing");
    assert!(containers_of(&d.owner()).await.is_empty(), "bad input must leave no container");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_all_succeed() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let started = std::time::Instant::now();
    let creates = (0..50).map(|i| {
        d.call(
            Method::POST,
            "/api/sandbox",
            Some(json!({"image": BUSYBOX, "backend": "docker", "userId": format!("u{i}")})),
        )
    });
    let results = futures_util::future::join_all(creates).await;
    eprintln!("50 concurrent creates took {:?}", started.elapsed());
    for (status, v) in &results {
        assert_eq!(*status, 201, "{v}");
    }
    assert_eq!(containers_of(&d.owner()).await.len(), 50);
    let (status, v) = d.call(Method::DELETE, "/api/sandbox", None).await;
    assert_eq!((status, v), (200, json!({"stopped": 50})));
    assert!(containers_of(&d.owner()).await.is_empty(), "stop-all removes every container");
    let (_, health) = d.call(Method::GET, "/api/health", None).await;
    assert_eq!(health["sessions"], 0);
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reaper_removes_expired_sessions_from_the_engine() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), Duration::from_secs(1)).await;
    let s = d.create(json!({"ttlSeconds": 2})).await;
    let keep = d.create(json!({"ttlSeconds": 3600})).await;
    let created = std::time::Instant::now();
    let container = s["containerId"].as_str().unwrap().to_string();
    let gone = eventually(Duration::from_secs(5), || {
        let c = container.clone();
        async move { !container_exists(&c).await }
    })
    .await;
    assert!(gone, "the expired container is still in the engine after {:?}", created.elapsed());
    let (_, got) = d.call(Method::GET, &format!("/api/sandbox/{}", s["id"].as_str().unwrap()), None).await;
    assert_eq!((got["status"].as_str(), got["endedReason"].as_str()), (Some("terminated"), Some("expired")), "{got}");
    assert!(container_exists(keep["containerId"].as_str().unwrap()).await, "an unexpired session is left alone");
    let metrics = d.http.get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dagger_sandbox_sessions_reaped_total 1"), "{metrics}");
    assert!(metrics.contains("dagger_sandbox_sessions{status=\"terminated\"} 1"), "{metrics}");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn templates_from_the_state_dir_give_image_and_working_directory() {
    let (_cleanup, dir) = state_dir();
    let file = dir.path().join(dagger_sandbox_server::templates::TEMPLATES_FILE);
    std::fs::write(&file, r#"{"tiny": {"imgae": "x"}}"#).unwrap();
    let opts = dagger_sandbox_server::ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().to_path_buf(),
        reap_interval: REAP,
        pools: Vec::new(),
    };
    let err = dagger_sandbox_server::start(opts).await.err().expect("a bad templates.json stops the start");
    assert!(format!("{err:#}").contains("templates.json") && format!("{err:#}").contains("imgae"), "{err:#}");

    std::fs::write(&file, format!(r#"{{"tiny": {{"image": "{BUSYBOX}", "workingDirectory": "/srv/app"}}}}"#)).unwrap();
    let d = Daemon::start(dir.path(), REAP).await;
    let (status, s) =
        d.call(Method::POST, "/api/sandbox", Some(json!({"template": "tiny", "backend": "docker"}))).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!((s["template"].as_str(), s["image"].as_str()), (Some("tiny"), Some(BUSYBOX)));
    assert_eq!(s["workingDirectory"], "/srv/app");
    let (_, r) = d
        .call(
            Method::POST,
            &format!("/api/sandbox/{}/exec", s["id"].as_str().unwrap()),
            Some(json!({"command": "pwd"})),
        )
        .await;
    assert_eq!(r["stdout"], "/srv/app\n");
    d.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_hosts_and_origins_are_refused_and_every_error_is_json() {
    let (_cleanup, dir) = state_dir();
    let d = Daemon::start(dir.path(), REAP).await;
    let is_error = |v: &Value, code: &str| v["error"]["code"] == code && v["error"]["message"].is_string();
    // DNS rebinding: a page's own host name resolving to 127.0.0.1 reaches nothing, open routes included.
    for path in ["/", "/metrics", "/openapi.json", "/api/health"] {
        let r = d.req(Method::GET, path).header("Host", "evil.example").send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(is_error(&v, "FORBIDDEN"), "{path}: {v}");
    }
    for host in ["localhost", &format!("127.0.0.1:{}", d.server.addr.port())] {
        let r = d.req(Method::GET, "/api/health").header("Host", host).send().await.unwrap();
        assert_eq!(r.status(), 200, "Host {host}");
    }
    // A page on another origin cannot change state, even with the token; the daemon's own can.
    let create = json!({"image": common::BUSYBOX, "backend": "docker", "command": "true"});
    let r = d
        .req(Method::POST, "/api/sandbox")
        .header("Origin", "https://evil.example")
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(is_error(&r.json().await.unwrap(), "FORBIDDEN"));
    let (_, list) = d.call(Method::GET, "/api/sandbox", None).await;
    assert_eq!(list["sandboxes"].as_array().map(Vec::len), Some(0), "nothing was created: {list}");
    let r = d.req(Method::DELETE, "/api/sandbox").header("Origin", "http://127.0.0.1:1").send().await.unwrap();
    assert_eq!(r.status(), 403, "another local port is another origin");
    let own = format!("http://127.0.0.1:{}", d.server.addr.port());
    let r = d.req(Method::DELETE, "/api/sandbox").header("Origin", own).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // Errors axum makes itself come in the documented shape too.
    // On a client of its own: the daemon answers 413 without reading the rest of the body and
    // closes that connection, which a pooled client could otherwise pick up for the next request.
    let big = "x".repeat(3 << 20);
    let r = reqwest::Client::new()
        .post(d.url("/api/sandbox"))
        .bearer_auth(&d.server.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(is_error(&r.json().await.unwrap(), "TOO_LARGE"));
    let r = d.req(Method::GET, "/api/sandbox/%FF").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(is_error(&r.json().await.unwrap(), "INVALID_ARGUMENT"));
    for m in [Method::PATCH, Method::TRACE] {
        let r = d.req(m.clone(), "/api/sandbox").send().await.unwrap();
        assert_eq!(r.status(), 405, "{m}");
        assert!(r.headers().get("allow").is_some(), "{m}: Allow is kept");
        assert!(is_error(&r.json().await.unwrap(), "METHOD_NOT_ALLOWED"), "{m}");
    }
    d.server.shutdown().await;
}

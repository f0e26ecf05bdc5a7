//! The create body's `caCertificates` and `caches`: bad values are `400 INVALID_ARGUMENT` before
//! anything is created; good ones reach the sandbox.

mod common;

use std::time::Duration;

use common::Daemon;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_certificates_and_caches_are_checked_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), Duration::from_secs(300)).await;
    let body = |extra: serde_json::Value| {
        let mut b = json!({"image": common::BUSYBOX, "backend": "docker"});
        b.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap());
        b
    };
    for bad in [
        json!({"caCertificates": ["/no/such/corp-ca.pem"]}),
        json!({"caCertificates": "/a/path/not/in/a/list.pem"}),
        json!({"caches": ["maven"]}),
        json!({"caches": 3}),
    ] {
        let (status, v) = d.call(Method::POST, "/api/sandbox", Some(body(bad.clone()))).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT", "{bad}: {v}");
    }
    let pem = dir.path().join("corp.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n").unwrap();
    let s = d.create(json!({"caCertificates": [pem], "caches": false})).await;
    let id = s["id"].as_str().unwrap();
    let (status, r) = d
        .call(
            Method::POST,
            &format!("/api/sandbox/{id}/exec"),
            Some(json!({"command": "tail -n 2 \"$SSL_CERT_FILE\"; cat \"$NODE_EXTRA_CA_CERTS\" | wc -l"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["stdout"], "QUJD\n-----END CERTIFICATE-----\n3\n", "{r}");
    let (status, _) = d.call(Method::DELETE, &format!("/api/sandbox/{id}"), None).await;
    assert!(status < 300);
    d.server.shutdown().await;
}

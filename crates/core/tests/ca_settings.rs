//! `caCertificates` from the environment (`DAGGER_SANDBOX_CA_CERTIFICATES`, a `:`-separated list),
//! installed on the local backend as one bundle with each certificate on its own lines; files
//! too large together for a bundle are refused before anything is made. One test: it sets a
//! process-wide variable.

use dagger_sandbox::{BackendChoice, CaCertificates, ErrorCode, Sandbox, SandboxConfig, CA_CERTIFICATES_ENV, CA_FILE};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_from_the_environment_are_installed_whole_and_oversized_ones_refused() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a.pem"), t.path().join("b.pem"));
    std::fs::write(&a, PEM).unwrap(); // no final newline: the next certificate must not join its last line
    std::fs::write(&b, format!("{PEM}\n")).unwrap();
    std::env::set_var(CA_CERTIFICATES_ENV, format!("{}:{}", a.display(), b.display()));

    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await.unwrap();
    let bundle = sb.read_to_string(CA_FILE).await.unwrap();
    assert_eq!(bundle, format!("{PEM}\n{PEM}\n"), "both certificates, each on its own lines");
    let env = sb.env();
    let installed = format!("{}{CA_FILE}", sb.resource_id());
    assert_eq!(env.get("NODE_EXTRA_CA_CERTS"), Some(&installed), "tools are pointed at the host path of the bundle");
    sb.close().await.unwrap();

    // Two files that are each fine but too large together for a CA bundle.
    let big = vec![b'x'; 5 * 1024 * 1024];
    std::fs::write(&a, &big).unwrap();
    std::fs::write(&b, &big).unwrap();
    let e = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("more than the"), "{e}");
    std::env::remove_var(CA_CERTIFICATES_ENV);

    // "host" is written back as the word it was read from.
    assert_eq!(serde_json::to_value(CaCertificates::Host).unwrap(), serde_json::json!("host"));
}

//! `caCertificates`: a sandbox trusts the host's CAs when asked, so `npm install` works on a network
//! that intercepts TLS with its own CA (this one does); a missing CA file is `INVALID_ARGUMENT`
//! before anything is created.

use dagger_sandbox::{BackendChoice, CaCertificates, ErrorCode, ExecOptions, Sandbox, SandboxConfig};

/// Official Node 22 with npm (`scripts/engine.sh`).
const NODE22: &str = "dagger-sandbox-test/node:22";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Whether Docker and the Node 22 image are here; with `DAGGER_SANDBOX_REQUIRE_DOCKER=1` their
/// absence fails the test instead of skipping it.
async fn node22_here() -> bool {
    let why = match dagger_sandbox::engines::docker_available().await {
        Err(e) => format!("no Docker engine answers ({e})"),
        Ok(_) => match std::process::Command::new("docker").args(["image", "inspect", NODE22]).output() {
            Ok(o) if o.status.success() => return true,
            _ => format!("{NODE22} is missing (run scripts/engine.sh)"),
        },
    };
    assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "{why}");
    println!("SKIPPED: {why}");
    false
}

const INSTALL: &str = "cd /tmp && npm install --no-audit --no-fund --no-update-notifier is-number@7.0.0 2>&1";

#[test]
fn npm_install_through_the_intercepting_proxy_needs_and_gets_the_host_cas() {
    runtime().block_on(async {
        if !node22_here().await {
            return;
        }
        let base = SandboxConfig::new().backend(BackendChoice::Docker).image(NODE22).network(true);
        // Without: an intercepting network's CA is unknown to the image, and npm says so.
        let sb = Sandbox::create(base.clone().ca_certificates(CaCertificates::Files(vec![]))).await.unwrap();
        // npm retries a certificate error for about a minute; once is enough to see it.
        let without = sb
            .exec(&INSTALL.replace("npm install", "npm install --fetch-retries=0"), ExecOptions::new())
            .await
            .unwrap();
        sb.close().await.unwrap();
        if without.exit_code == 0 {
            println!("NOTE: npm install passed without the host CAs: this network does not intercept TLS");
        } else {
            assert!(
                ["SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"]
                    .iter()
                    .any(|code| without.stdout.contains(code)),
                "npm failed for another reason than the CA:\n{}",
                without.stdout
            );
        }
        // With: the same install passes, and every tool's variable names a file that exists.
        let sb = Sandbox::create(base.ca_certificates(CaCertificates::Host)).await.unwrap();
        let with = sb.exec(INSTALL, ExecOptions::new()).await.unwrap();
        assert_eq!(with.exit_code, 0, "npm install with the host CAs failed:\n{}", with.stdout);
        let check =
            "for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE REQUESTS_CA_BUNDLE PIP_CERT npm_config_cafile GIT_SSL_CAINFO; \
                     do eval f=\\$$v; test -s \"$f\" || echo \"$v=$f missing\"; done; \
                     grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/dagger-sandbox-ca.pem";
        let r = sb.exec(check, ExecOptions::new()).await.unwrap();
        assert_eq!(r.exit_code, 0, "{}{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("missing"), "{}", r.stdout);
        assert!(r.stdout.trim().parse::<u32>().unwrap() >= 1, "{}", r.stdout);
        // A fork keeps the trust (files and variables).
        let child = sb.fork().await.unwrap();
        let again = child
            .exec("cd /tmp && rm -rf node_modules && npm ci --no-audit --no-fund 2>&1", ExecOptions::new())
            .await
            .unwrap();
        assert_eq!(again.exit_code, 0, "{}", again.stdout);
        child.close().await.unwrap();
        sb.close().await.unwrap();
    });
}

#[test]
fn a_missing_ca_file_is_invalid_argument_before_any_sandbox_exists() {
    runtime().block_on(async {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("corp-ca.pem");
        for backend in [BackendChoice::Local, BackendChoice::Docker] {
            let cfg = SandboxConfig::new()
                .backend(backend)
                .image(NODE22)
                .ca_certificates(CaCertificates::Files(vec![missing.clone()]));
            let err = Sandbox::create(cfg).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
            assert!(err.to_string().contains("corp-ca.pem"), "{err}");
        }
        // A file that holds no certificate is refused too (after create; the sandbox is removed).
        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let cfg = SandboxConfig::new().backend(BackendChoice::Local).ca_certificates(CaCertificates::Files(vec![junk]));
        assert_eq!(Sandbox::create(cfg).await.unwrap_err().code(), ErrorCode::InvalidArgument);
    });
}

#[test]
fn local_sandboxes_point_the_tools_at_a_bundle_of_the_host_store_and_the_given_certificates() {
    runtime().block_on(async {
        let d = tempfile::tempdir().unwrap();
        let pem = d.path().join("corp.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n").unwrap();
        let cfg = SandboxConfig::new()
            .backend(BackendChoice::Local)
            .env("GIT_SSL_CAINFO", "/mine.pem")
            .ca_certificates(CaCertificates::Files(vec![pem]));
        let sb = Sandbox::create(cfg).await.unwrap();
        let env = sb.env();
        let node = std::path::PathBuf::from(&env["NODE_EXTRA_CA_CERTS"]);
        assert!(node.starts_with(sb.resource_id()), "{node:?} should be inside the sandbox directory");
        assert_eq!(
            std::fs::read_to_string(&node).unwrap(),
            "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
        );
        let store = std::fs::read_to_string(&env["SSL_CERT_FILE"]).unwrap();
        assert!(store.ends_with("QUJD\n-----END CERTIFICATE-----\n"), "the given certificate is appended");
        if let Ok(host) = dagger_sandbox::host_bundle() {
            assert!(store.len() > std::fs::metadata(host).unwrap().len() as usize, "the host store comes first");
        }
        assert_eq!(env["GIT_SSL_CAINFO"], "/mine.pem", "a value the config gives wins");
        let r = sb.exec("test -s \"$npm_config_cafile\" && echo ok", ExecOptions::new()).await.unwrap();
        assert_eq!(r.stdout.trim(), "ok");
        sb.close().await.unwrap();
    });
}

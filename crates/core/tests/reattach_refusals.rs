//! `Sandbox::reattach` with what a restarted daemon may hand it from a damaged or foreign record:
//! each refusal is typed and comes before any engine resource is touched.

use dagger_sandbox::{BackendChoice, ErrorCode, Sandbox, SandboxConfig};

async fn refused(config: SandboxConfig, id: &str, resource: &str) -> dagger_sandbox::Error {
    match Sandbox::reattach(config, id, resource).await {
        Ok(sb) => panic!("reattach({id:?}, {resource:?}) took back {}", sb.id()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn ids_that_are_not_sandbox_ids_are_invalid_arguments() {
    let long = format!("sbx-{}", "a".repeat(61));
    for id in ["", "../etc", "sbx-a b", "sbx-a/../../b", "container-1234", long.as_str()] {
        let e = refused(SandboxConfig::new().backend(BackendChoice::Local), id, "/nonexistent/root").await;
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{id:?}: {e}");
        assert!(e.to_string().contains("is not a sandbox id"), "{id:?}: {e}");
    }
}

#[tokio::test]
async fn a_dagger_sandbox_cannot_be_reattached_and_auto_says_where_its_state_was() {
    let e = refused(SandboxConfig::new().backend(BackendChoice::Dagger), "sbx-0123456789ab", "dagger:abc").await;
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("state lives in the client that made it"), "{e}");

    let e = refused(SandboxConfig::new(), "sbx-0123456789ab", "dagger:abc").await;
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    assert!(e.to_string().contains("dagger:abc"), "{e}");
}

#[tokio::test]
async fn a_local_directory_that_is_gone_or_not_the_sandboxs_own_is_not_found() {
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = elsewhere.path().join("root");
    std::fs::create_dir(&foreign).unwrap();
    // A path outside the private parent is never taken for a sandbox's, even when it exists; auto
    // takes an absolute path for a local sandbox.
    for (choice, resource) in [
        (BackendChoice::Local, foreign.display().to_string()),
        (BackendChoice::Auto, foreign.display().to_string()),
        (BackendChoice::Local, "/nonexistent/sbx-0123456789ab/root".to_string()),
    ] {
        let e = refused(SandboxConfig::new().backend(choice), "sbx-0123456789ab", &resource).await;
        assert_eq!(e.code(), ErrorCode::NotFound, "{choice:?} {resource}: {e}");
        assert!(e.to_string().contains(&resource), "{e}");
    }
    assert!(foreign.is_dir(), "the foreign directory was left alone");
}

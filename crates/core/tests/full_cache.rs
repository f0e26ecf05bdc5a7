//! A full shared npm cache: commands that do not need the cache still work. npm writes a log of
//! every run into its cache directory, so without care `npm test` on a full cache volume fails
//! with ENOSPC and turns a passing project into a failing one.

use std::process::Command;

use dagger_sandbox::{BackendChoice, CacheKind, Caches, ExecOptions, Sandbox, SandboxConfig};

/// Official Node 22 with npm (`scripts/engine.sh`).
const NODE22: &str = "dagger-sandbox-test/node:22";

fn docker(args: &[&str]) -> bool {
    Command::new("docker").args(args).output().is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_test_passes_on_a_full_npm_cache() {
    if !docker(&["image", "inspect", NODE22]) {
        assert_ne!(std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(), Ok("1"), "Docker or {NODE22} missing");
        println!("SKIPPED: no Docker engine or {NODE22} (run scripts/engine.sh)");
        return;
    }
    // This test's own cache set (the only test of this binary, so setting the variable races nothing).
    let ns = format!("full{}", std::process::id());
    std::env::set_var(dagger_sandbox::caches::CACHE_NAMESPACE_ENV, &ns);
    let volume = CacheKind::Npm.volume_name();
    // The npm cache volume, made ahead on a 64 KiB tmpfs. A tmpfs volume starts empty in each
    // container, so the sandbox fills it itself, as an install that used up the space would.
    assert!(docker(&[
        "volume",
        "create",
        "--label",
        "dev.dagger-sandbox.cache=npm",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=64k",
        &volume
    ]));
    let config =
        SandboxConfig::new().backend(BackendChoice::Docker).image(NODE22).caches(Caches::Kinds(vec![CacheKind::Npm]));
    let sb = Sandbox::create(config).await.unwrap();
    let r = sb
        .exec(
            "dd if=/dev/zero of=\"$npm_config_cache/fill\" bs=1k count=100 2>/dev/null; \
             mkdir -p /p && cd /p && echo '{\"scripts\":{\"test\":\"echo tested\"}}' > package.json && npm test",
            ExecOptions::new(),
        )
        .await;
    sb.close().await.unwrap();
    let removed = docker(&["volume", "rm", "-f", &volume]);
    let r = r.unwrap();
    assert_eq!(r.exit_code, 0, "npm test on a full npm cache: {r:?}");
    assert!(r.stdout.contains("tested"), "{r:?}");
    assert!(removed, "the test's volume was removed");
}

//! Dependency caches on the local backend: host directories under the user's cache root, shared by
//! every sandbox that asks for them, listed with their size and removed by a prune; a cache that
//! cannot be made is left out with a warning instead of failing the create. One test: it sets
//! process-wide environment variables.

use dagger_sandbox::caches::{list_caches, prune_caches, CACHE_NAMESPACE_ENV};
use dagger_sandbox::{BackendChoice, CacheKind, Caches, ExecOptions, Sandbox, SandboxConfig};

fn local_with_npm_cache() -> SandboxConfig {
    SandboxConfig::new().backend(BackendChoice::Local).caches(Caches::Kinds(vec![CacheKind::Npm]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_caches_are_shared_listed_pruned_and_never_fail_a_create() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_CACHE_HOME", home.path());
    // A namespace of this test alone: nothing of the user's real caches (or volumes) is touched.
    std::env::set_var(CACHE_NAMESPACE_ENV, format!("covtest{}", std::process::id()));
    let dir = CacheKind::Npm.local_dir();
    assert!(dir.starts_with(home.path()), "{}", dir.display());

    let a = Sandbox::create(local_with_npm_cache()).await.unwrap();
    assert_eq!(a.env().get("npm_config_cache"), Some(&dir.display().to_string()));
    a.exec("printf 0123456789 > \"$npm_config_cache/tarball\"", ExecOptions::new()).await.unwrap();
    let b = Sandbox::create(local_with_npm_cache()).await.unwrap();
    let seen = b.exec("cat \"$npm_config_cache/tarball\"", ExecOptions::new()).await.unwrap();
    assert_eq!(seen.stdout, "0123456789", "a second sandbox sees what the first one cached");
    a.close().await.unwrap();
    b.close().await.unwrap();
    assert!(dir.join("tarball").is_file(), "the cache outlives the sandboxes");

    let listed = list_caches().await.unwrap();
    let entry = listed.iter().find(|c| c.backend == "local").expect("the local cache is listed");
    assert_eq!((entry.kind.as_str(), entry.name.as_str()), ("npm", dir.display().to_string().as_str()));
    assert!(entry.size.is_some_and(|s| s >= 10), "{entry:?}");

    // A prune of another kind leaves it; a prune of npm removes it.
    assert!(prune_caches(&[CacheKind::Pip]).await.unwrap().removed.is_empty());
    assert!(dir.is_dir());
    let report = prune_caches(&[CacheKind::Npm]).await.unwrap();
    assert_eq!(report.removed, vec![dir.display().to_string()], "{report:?}");
    assert!(!dir.exists());
    assert!(list_caches().await.unwrap().iter().all(|c| c.backend != "local"));

    // A cache root that cannot be made (a file in the way): the sandbox comes up without the cache.
    let blocker = home.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    std::env::set_var("XDG_CACHE_HOME", &blocker);
    let c = Sandbox::create(local_with_npm_cache()).await.unwrap();
    let warnings = c.warnings();
    assert!(warnings.iter().any(|w| w.contains("the npm cache directory") && w.contains("installing without it")));
    assert!(!c.env().contains_key("npm_config_cache"), "no variable points at a cache that is not there");
    assert_eq!(c.exec("echo works", ExecOptions::new()).await.unwrap().stdout, "works\n");
    c.close().await.unwrap();

    std::env::remove_var("XDG_CACHE_HOME");
    std::env::remove_var(CACHE_NAMESPACE_ENV);
}

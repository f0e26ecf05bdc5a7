//! The main job as users run it: `dagger-sandbox validate` of real Node projects (committed under
//! `tests/fixtures/node`, lockfiles included) on Docker with the official Node 22 image, the network
//! on, the host's CAs trusted and a real `npm ci` of their dependencies from the registry, asserting
//! each verdict.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{describe, stdout, Harness};
use serde_json::Value;

/// Official Node 22 with npm (`scripts/engine.sh`).
const NODE22: &str = "dagger-sandbox-test/node:22";

/// A committed fixture project.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/node").join(name)
}

/// Whether the Node 22 image is here (and Docker); required with `DAGGER_SANDBOX_REQUIRE_DOCKER=1`.
fn node22_ready(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", NODE22])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert_ne!(
            std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref(),
            Ok("1"),
            "DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or {NODE22} is missing (run scripts/engine.sh)"
        );
        eprintln!("SKIPPED {test}: no Docker engine or {NODE22} (run scripts/engine.sh)");
    }
    ok
}

/// `validate FIXTURE --json` with `npm ci`, as the README's main-job command runs it; the verdict
/// and the process's success.
fn validate(h: &Harness, name: &str) -> (Value, bool, String) {
    // The tests' own cache set, kept between runs like a user's (`cache prune` empties it).
    // The fixtures' .npmrc retries a stalled registry connection after 30 s instead of npm's
    // default 5 minutes, so one stall on a slow network does not use up the run's bound.
    validate_in(h, name, "tests", &["--install", "npm ci --no-audit --no-fund"])
}

/// [`validate`] with the dependency caches of `namespace` and `extra` options.
fn validate_in(h: &Harness, name: &str, namespace: &str, extra: &[&str]) -> (Value, bool, String) {
    let dir = fixture(name);
    let mut cmd = h.cmd();
    cmd.env("DAGGER_SANDBOX_CACHE_NAMESPACE", namespace)
        .args([
            "validate",
            dir.to_str().unwrap(),
            "--backend",
            "docker",
            "--image",
            NODE22,
            "--network",
            "--ca-certificates",
            "host",
            "--json",
        ])
        .args(extra);
    let out = common::run_bounded(&mut cmd, std::time::Duration::from_secs(420));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    (v, out.status.success(), describe(&out))
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} step: {v}"))
}

#[test]
fn a_passing_workspace_project_installs_its_dependencies_and_passes() {
    if !node22_ready("a_passing_workspace_project_installs_its_dependencies_and_passes") {
        return;
    }
    let h = Harness::new();
    let (v, ok, why) = validate(&h, "workspace-pass");
    assert!(ok && v["passed"] == true, "{why}");
    assert_eq!(v["backend"], "docker");
    assert!(step(&v, "install")["stdoutTail"].as_str().unwrap().contains("added"), "{v}");
    let test_out = step(&v, "test")["stdoutTail"].as_str().unwrap();
    for name in ["current versions are greeted through the workspace package", "greets with a human duration"] {
        assert!(test_out.contains(name), "both packages' tests ran ({name}): {test_out}");
    }
    assert!(test_out.contains("# fail 0"), "{test_out}");
}

#[test]
fn a_project_with_a_failing_test_fails_on_the_test_step_after_a_good_install() {
    if !node22_ready("a_project_with_a_failing_test_fails_on_the_test_step_after_a_good_install") {
        return;
    }
    let h = Harness::new();
    let (v, ok, why) = validate(&h, "failing-test");
    assert!(!ok && v["passed"] == false, "{why}");
    assert_eq!(step(&v, "install")["exitCode"], 0, "{v}");
    let test = step(&v, "test");
    assert_ne!(test["exitCode"], 0, "{v}");
    let tail = format!("{}{}", test["stdoutTail"].as_str().unwrap(), test["stderrTail"].as_str().unwrap());
    assert!(tail.contains("# pass 1") && tail.contains("# fail 1"), "{tail}");
    assert!(tail.contains("1.3.0"), "the failing assertion is shown: {tail}");
}

#[test]
fn a_project_with_over_150_locked_packages_installs_them_all_and_passes() {
    if !node22_ready("a_project_with_over_150_locked_packages_installs_them_all_and_passes") {
        return;
    }
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("express-api").join("package-lock.json")).unwrap())
            .unwrap();
    let locked = lock["packages"].as_object().unwrap().keys().filter(|k| !k.is_empty()).count();
    assert!(locked >= 150, "the fixture's lockfile has {locked} packages");
    let h = Harness::new();
    let (v, ok, why) = validate(&h, "express-api");
    assert!(ok && v["passed"] == true, "{why}");
    let install = step(&v, "install")["stdoutTail"].as_str().unwrap().to_string();
    // Every locked package but platform-specific optional ones (fsevents) is installed.
    let added: usize = install
        .split_once("added ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `added N packages` in: {install}"));
    assert!(added >= 150 && added <= locked, "npm ci added {added} of {locked} locked packages: {install}");
    assert!(step(&v, "test")["stdoutTail"].as_str().unwrap().contains("4 passing"), "{v}");
}

#[test]
fn a_missing_ca_file_is_invalid_argument_and_nothing_runs() {
    let h = Harness::new();
    let missing = h.state().join("corp-ca.pem");
    let out = h.run(&[
        "validate",
        fixture("failing-test").to_str().unwrap(),
        "--backend",
        "local",
        "--ca-certificates",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let err = common::stderr(&out);
    assert!(err.contains("INVALID_ARGUMENT") && err.contains("corp-ca.pem"), "{err}");
    assert!(!stdout(&out).contains("STEP"), "no step ran: {}", describe(&out));
}

#[test]
fn caches_restore_an_unchanged_project_and_a_corrupt_cache_never_changes_a_verdict() {
    if !node22_ready("caches_restore_an_unchanged_project_and_a_corrupt_cache_never_changes_a_verdict") {
        return;
    }
    let h = Harness::new();
    let ns = format!("t{}", std::process::id());
    // Cold: nothing to restore; npm ci installs, and the tree is saved.
    let (v, ok, why) = validate_in(&h, "express-api", &ns, &[]);
    assert!(ok, "{why}");
    assert_eq!(v["nodeModulesCache"], "miss", "{v}");
    assert_eq!(step(&v, "install")["command"], "npm ci --no-audit --no-fund");
    // Warm: the tree is restored and the install only checks it against the lockfile.
    let (v, ok, why) = validate_in(&h, "express-api", &ns, &[]);
    assert!(ok, "{why}");
    assert_eq!(v["nodeModulesCache"], "hit", "{v}");
    assert!(step(&v, "install")["command"].as_str().unwrap().starts_with("npm install --prefer-offline"), "{v}");
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    // Corrupt store entries and npm cache contents: a warning, a plain install, the same verdict.
    let volume = |kind: &str| format!("dagger-sandbox-cache-{}-{ns}-{kind}", nix::unistd::getuid());
    let spoil =
        "for f in /nm/*.tar; do echo garbage > \"$f\"; done; find /npm/_cacache/content-v2 -type f | head -100 | while read f; do echo bad > \"$f\"; done";
    let status = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{}:/nm", volume("node-modules")),
            "-v",
            &format!("{}:/npm", volume("npm")),
        ])
        .args([common::BUSYBOX, "sh", "-c", spoil])
        .status()
        .unwrap();
    assert!(status.success());
    let (v, ok, why) = validate_in(&h, "express-api", &ns, &[]);
    assert!(ok && v["passed"] == true, "a corrupt cache must not fail a passing project: {why}");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("could not be restored"), "{v}");
    // A failing project still fails, on its test step, with the caches on.
    let (v, ok, _) = validate_in(&h, "failing-test", &ns, &[]);
    assert!(!ok && v["passed"] == false);
    assert_eq!(step(&v, "install")["exitCode"], 0, "{v}");
    // `cache ls` shows this namespace's volumes; `cache prune` removes them all.
    let ls = |h: &Harness| {
        let mut c = h.cmd();
        c.env("DAGGER_SANDBOX_CACHE_NAMESPACE", &ns).args(["cache", "ls", "--json"]);
        let out = common::run_bounded(&mut c, std::time::Duration::from_secs(60));
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()
    };
    let listed = ls(&h);
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&volume("npm").as_str()) && names.contains(&volume("node-modules").as_str()), "{listed}");
    let mut prune = h.cmd();
    prune.env("DAGGER_SANDBOX_CACHE_NAMESPACE", &ns).args(["cache", "prune"]);
    let out = common::run_bounded(&mut prune, std::time::Duration::from_secs(60));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(ls(&h), serde_json::json!([]), "every cache of the namespace was removed");
}

#[test]
fn an_install_that_fails_on_a_broken_cache_runs_again_without_it_and_keeps_the_verdict() {
    if !node22_ready("an_install_that_fails_on_a_broken_cache_runs_again_without_it_and_keeps_the_verdict") {
        return;
    }
    let h = Harness::new();
    let ns = format!("b{}", std::process::id());
    let volume = cache_volume(&ns, "npm", &[]);
    // npm's cache directory is unreadable: npm ci fails on it.
    let spoil = "echo x > /c/_cacache && chmod 000 /c/_cacache";
    let status = Command::new("docker")
        .args(["run", "--rm", "-v", &format!("{volume}:/c"), common::BUSYBOX, "sh", "-c", spoil])
        .status()
        .unwrap();
    assert!(status.success());
    let (v, ok, why) = validate_in(&h, "failing-test", &ns, &[]);
    // The verdict is the project's (its test fails), not the cache's.
    assert!(!ok && v["passed"] == false, "{why}");
    assert_eq!(step(&v, "install")["exitCode"], 0, "the install passed on its second run: {v}");
    assert_eq!(step(&v, "install")["command"], "npm ci --no-audit --no-fund");
    assert!(v["warnings"].to_string().contains("ran again without them"), "{v}");
    assert_ne!(step(&v, "test")["exitCode"], 0);
    let mut prune = h.cmd();
    prune.env("DAGGER_SANDBOX_CACHE_NAMESPACE", &ns).args(["cache", "prune"]);
    assert!(common::run_bounded(&mut prune, std::time::Duration::from_secs(60)).status.success());
}

/// Makes the cache volume of `kind` in namespace `ns` ahead of `validate`, labelled as `validate`
/// labels its own (so `cache prune` finds it), with `opts` for the volume driver; its name.
fn cache_volume(ns: &str, kind: &str, opts: &[&str]) -> String {
    let uid = nix::unistd::getuid();
    let volume = format!("dagger-sandbox-cache-{uid}-{ns}-{kind}");
    let made = Command::new("docker")
        .args(["volume", "create", "--label", &format!("dev.dagger-sandbox.cache={kind}")])
        .args(["--label", &format!("dev.dagger-sandbox.cache-user={uid}")])
        .args(["--label", &format!("dev.dagger-sandbox.cache-namespace={ns}")])
        .args(opts)
        .arg(&volume)
        .status()
        .unwrap();
    assert!(made.success(), "docker volume create {volume}");
    volume
}

#[test]
fn full_cache_volumes_degrade_to_a_plain_install_with_a_warning_and_keep_the_verdict() {
    if !node22_ready("full_cache_volumes_degrade_to_a_plain_install_with_a_warning_and_keep_the_verdict") {
        return;
    }
    let h = Harness::new();
    let ns = format!("f{}", std::process::id());
    // npm's cache and the node_modules store on 64 KiB tmpfs volumes: full after the first files.
    let tiny = ["--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=64k"];
    for kind in ["npm", "node-modules"] {
        cache_volume(&ns, kind, &tiny);
    }
    let (v, ok, why) = validate_in(&h, "express-api", &ns, &[]);
    assert!(ok && v["passed"] == true, "a full cache must not fail a passing project: {why}");
    assert_eq!(step(&v, "install")["exitCode"], 0, "{v}");
    assert!(v["warnings"].to_string().contains("ran again without them"), "{v}");
    // A failing project still fails, on its test step.
    let (v, ok, _) = validate_in(&h, "failing-test", &ns, &[]);
    assert!(!ok && v["passed"] == false, "{v}");
    assert_eq!(step(&v, "install")["exitCode"], 0, "{v}");
    assert_ne!(step(&v, "test")["exitCode"], 0, "{v}");
    // Only the node_modules store full: the install passes with the caches, the save fails.
    let ns2 = format!("{ns}s");
    cache_volume(&ns2, "node-modules", &tiny);
    let (v, ok, why) = validate_in(&h, "express-api", &ns2, &[]);
    assert!(ok && v["passed"] == true, "{why}");
    assert!(v["warnings"].to_string().contains("node_modules cache was not saved"), "the full store is reported: {v}");
    for ns in [&ns, &ns2] {
        let mut prune = h.cmd();
        prune.env("DAGGER_SANDBOX_CACHE_NAMESPACE", ns).args(["cache", "prune"]);
        assert!(common::run_bounded(&mut prune, std::time::Duration::from_secs(60)).status.success());
    }
}

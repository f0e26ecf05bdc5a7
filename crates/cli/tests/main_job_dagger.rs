//! The main job on a live Dagger engine: `dagger-sandbox validate` of the committed Node fixtures
//! with a real `npm ci`, the host's CAs trusted and the engine's cache volumes, asserting each
//! verdict. CI has no engine: there every test prints `SKIPPED` and returns. Set
//! `DAGGER_SANDBOX_TEST_DAGGER=1` (with an engine in sight, see docs/DAGGER.md) and
//! `DAGGER_SANDBOX_TEST_DAGGER_NPM_IMAGE` to an image with Node and npm in a registry the engine
//! reaches (the engine cannot see the local Docker store).

mod common;

use std::path::PathBuf;

use common::{describe, stdout, Harness};
use serde_json::Value;

/// The Node-with-npm image the engine pulls, or why the test skips.
fn npm_image(test: &str) -> Option<String> {
    let live = std::env::var("DAGGER_SANDBOX_TEST_DAGGER").as_deref() == Ok("1");
    match std::env::var("DAGGER_SANDBOX_TEST_DAGGER_NPM_IMAGE").ok().filter(|s| !s.is_empty()) {
        Some(image) if live => Some(image),
        _ => {
            eprintln!(
                "SKIPPED {test}: needs a live Dagger engine (DAGGER_SANDBOX_TEST_DAGGER=1) and \
                 DAGGER_SANDBOX_TEST_DAGGER_NPM_IMAGE naming a Node image with npm in a registry it reaches"
            );
            None
        }
    }
}

/// A committed fixture project.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/node").join(name)
}

/// `validate FIXTURE --backend dagger --json` with the caches of `namespace`: the report and
/// whether the process succeeded.
fn validate(h: &Harness, image: &str, name: &str, namespace: &str, extra: &[&str]) -> (Value, bool, String) {
    let dir = fixture(name);
    let mut cmd = h.cmd();
    cmd.env("DAGGER_SANDBOX_CACHE_NAMESPACE", namespace)
        .args(["validate", dir.to_str().unwrap(), "--backend", "dagger", "--image", image])
        .args(["--network", "--ca-certificates", "host", "--json"])
        .args(extra);
    let out = common::run_bounded(&mut cmd, std::time::Duration::from_secs(600));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    (v, out.status.success(), describe(&out))
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} step: {v}"))
}

#[test]
fn the_locked_express_project_passes_on_dagger_and_a_second_run_restores_its_tree() {
    let Some(image) = npm_image("the_locked_express_project_passes_on_dagger_and_a_second_run_restores_its_tree")
    else {
        return;
    };
    let h = Harness::new();
    // A namespace of this run's own: the first run is cold whatever ran before.
    let ns = format!("dagger{}-{}", std::process::id(), epoch_seconds());
    let (v, ok, why) = validate(&h, &image, "express-api", &ns, &[]);
    assert!(ok && v["passed"] == true, "{why}");
    assert_eq!(v["backend"], "dagger", "{v}");
    assert_eq!(v["nodeModulesCache"], "miss", "{v}");
    assert!(step(&v, "install")["command"].as_str().unwrap().starts_with("npm ci"), "{v}");
    assert!(step(&v, "install")["stdoutTail"].as_str().unwrap().contains("added"), "{v}");
    assert!(step(&v, "test")["stdoutTail"].as_str().unwrap().contains("4 passing"), "{v}");
    // Warm: the engine's cache volume holds the tree; the install only checks it.
    let (v, ok, why) = validate(&h, &image, "express-api", &ns, &[]);
    assert!(ok && v["passed"] == true, "{why}");
    assert_eq!(v["nodeModulesCache"], "hit", "{v}");
    assert!(step(&v, "install")["command"].as_str().unwrap().starts_with("npm install --prefer-offline"), "{v}");
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_failing_test_fails_the_verdict_on_dagger_after_a_good_install() {
    let Some(image) = npm_image("a_failing_test_fails_the_verdict_on_dagger_after_a_good_install") else {
        return;
    };
    let h = Harness::new();
    let (v, ok, why) = validate(&h, &image, "failing-test", "tests", &["--no-cache"]);
    assert!(!ok && v["passed"] == false, "{why}");
    assert_eq!(step(&v, "install")["exitCode"], 0, "{v}");
    let test = step(&v, "test");
    assert_ne!(test["exitCode"], 0, "{v}");
    let tail = format!("{}{}", test["stdoutTail"].as_str().unwrap(), test["stderrTail"].as_str().unwrap());
    assert!(tail.contains("# fail 1") && tail.contains("1.3.0"), "the failing assertion is shown: {tail}");
}

/// Seconds since the epoch, so two runs in one process id space never share a namespace.
fn epoch_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

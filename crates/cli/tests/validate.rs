//! `dagger-sandbox validate` through the real binary: a passing and a failing project on the Docker
//! engine and on the local backend, the JSON verdict, and bad input that loses nothing.

mod common;

use common::{describe, stderr, stdout, Harness, NODE};
use serde_json::Value;

const PACKAGE_JSON: &str = r#"{"name": "tiny", "version": "1.0.0", "scripts": {"test": "node test.js"}}"#;
const PASSING: &str = "console.log('1 test passed'); if (1 + 1 !== 2) process.exit(1);\n";
const FAILING: &str = "console.log('running'); console.error('AssertionError: 1 !== 2'); process.exit(1);\n";

/// A tiny node project, with a `node_modules` and a `.git` that must never be copied in.
fn node_project(h: &Harness, name: &str, test_js: &str) -> std::path::PathBuf {
    h.project(
        name,
        &[
            ("package.json", PACKAGE_JSON),
            ("test.js", test_js),
            ("node_modules/left-pad/index.js", "module.exports = 1;\n"),
            (".git/HEAD", "ref: refs/heads/main\n"),
        ],
    )
}

/// The test step a node image without npm can run: what `npm test` would, plus a check that the
/// excluded directories stayed out.
const TEST_STEP: &str = "test ! -e node_modules && test ! -e .git && node test.js";

#[test]
fn a_passing_project_gets_a_passing_verdict_on_docker() {
    if !common::docker_ready("a_passing_project_gets_a_passing_verdict_on_docker") {
        return;
    }
    let h = Harness::new();
    let dir = node_project(&h, "pass", PASSING);
    let out = h.run(&[
        "validate",
        dir.to_str().unwrap(),
        "--backend",
        "docker",
        "--image",
        NODE,
        "--install",
        "node -e \"require('./package.json')\"",
        "--test",
        TEST_STEP,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("STEP") && text.contains("install") && text.contains("test"), "{text}");
    assert!(text.contains("1 test passed"), "the output tail is shown: {text}");
    assert!(text.contains("PASS"), "{text}");
    assert!(text.contains("docker, container isolation"), "{text}");
    // The project is untouched: the excluded directories were skipped, not moved.
    assert!(dir.join("node_modules/left-pad/index.js").exists());
    assert!(dir.join(".git/HEAD").exists());
}

#[test]
fn a_failing_project_fails_and_names_the_step_with_json_details() {
    if !common::docker_ready("a_failing_project_fails_and_names_the_step_with_json_details") {
        return;
    }
    let h = Harness::new();
    let dir = node_project(&h, "fail", FAILING);
    let args = |json: bool| {
        let mut a = vec![
            "validate".to_string(),
            dir.to_str().unwrap().to_string(),
            "--backend".into(),
            "docker".into(),
            "--image".into(),
            NODE.into(),
            "--install".into(),
            "true".into(),
            "--test".into(),
            TEST_STEP.into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let human: Vec<String> = args(false);
    let out = h.run(&human.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("FAIL  step test"), "{text}");
    assert!(text.contains("exited 1"), "{text}");
    assert!(text.contains("AssertionError: 1 !== 2"), "the failing output is shown: {text}");

    let json_args: Vec<String> = args(true);
    let out = h.run(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(v["passed"], false);
    assert_eq!(v["backend"], "docker");
    assert_eq!(v["isolation"], "container");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for key in ["name", "command", "exitCode", "durationMs", "stdoutTail", "stderrTail"] {
        assert!(steps[0].get(key).is_some(), "step has {key}: {v}");
    }
    assert_eq!(steps[0]["name"], "install");
    assert_eq!(steps[0]["exitCode"], 0);
    assert_eq!(steps[1]["name"], "test");
    assert_eq!(steps[1]["command"], TEST_STEP);
    assert_eq!(steps[1]["exitCode"], 1);
    assert!(steps[1]["stderrTail"].as_str().unwrap().contains("AssertionError"));
    assert!(steps[1]["stdoutTail"].as_str().unwrap().contains("running"));
}

#[test]
fn the_npm_defaults_run_the_package_scripts_on_the_local_backend() {
    let has_npm = std::process::Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_npm {
        eprintln!("SKIPPED the_npm_defaults_run_the_package_scripts_on_the_local_backend: no npm on this host");
        return;
    }
    let h = Harness::new();
    let pass = h.project("npm-pass", &[("package.json", PACKAGE_JSON), ("test.js", PASSING)]);
    let out = h
        .cmd()
        .args(["validate", pass.to_str().unwrap(), "--backend", "local", "--json"])
        // No registry here: npm must not try to reach one for an install with no dependencies.
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_offline", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["backend"], "local");
    assert_eq!(v["isolation"], "process");
    assert_eq!(v["steps"][0]["command"], "npm install --no-audit --no-fund");
    assert_eq!(v["steps"][1]["command"], "npm test");
    assert!(stderr(&out).contains("without container isolation"), "the local backend says so: {}", describe(&out));

    let fail = h.project("npm-fail", &[("package.json", PACKAGE_JSON), ("test.js", FAILING)]);
    let out = h
        .cmd()
        .args(["validate", fail.to_str().unwrap(), "--backend", "local"])
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_offline", "true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains("FAIL  step test (npm test)"), "{}", describe(&out));
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let h = Harness::new();
    let missing = h.state().join("no-such-project");
    let out = h.run(&["validate", missing.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("no-such-project does not exist"), "{err}");
    assert!(err.contains("(INVALID_ARGUMENT)"), "{err}");
    assert!(stdout(&out).is_empty(), "nothing on stdout: {}", describe(&out));
}

#[test]
fn a_project_without_steps_is_refused_and_left_as_it_was() {
    let h = Harness::new();
    let dir = h.project("plain", &[("README.md", "hello\n")]);
    let out = h.run(&["validate", dir.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("no package.json") && err.contains("--install") && err.contains("--test"), "{err}");
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("README.md")]);
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "hello\n");

    let file = dir.join("README.md");
    let out = h.run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a directory"), "{}", describe(&out));

    let out = h.run(&["validate", dir.to_str().unwrap(), "--test", "true", "--template", "cobol"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown template \"cobol\""), "{}", describe(&out));
}

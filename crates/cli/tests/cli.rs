//! The command line itself through the real binary: usage errors, `doctor` (which must never start
//! a daemon), `serve` refusing unsafe options, and the state dir coming from the environment.

mod common;

use common::{describe, stderr, stdout, Harness};
use serde_json::Value;

#[test]
fn usage_errors_are_reported_by_clap_with_exit_2() {
    let h = Harness::new();
    for args in [
        &["exec", "sbx-1"][..],
        &["create", "--port", "0", "--", "true"],
        &["create", "--ttl", "soon"],
        &["create", "--backend", "kubernetes"],
        &["serve", "--reap-interval", "often"],
        &["frobnicate"],
    ] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(stderr(&out).contains("error:"), "{args:?}: {}", describe(&out));
    }
    // None of that touched the state dir.
    assert_eq!(std::fs::read_dir(h.state()).unwrap().count(), 0);
}

#[test]
fn help_lists_every_command() {
    let h = Harness::new();
    let out = h.run(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in ["serve", "create", "list", "exec", "logs", "stop", "clean", "doctor", "validate", "--state-dir"] {
        assert!(text.contains(cmd), "help mentions {cmd}: {text}");
    }
}

#[test]
fn doctor_reports_backends_state_and_daemon_without_starting_one() {
    let h = Harness::new();
    let v = h.json(&["doctor", "--json"]);
    let backends = v["backends"].as_array().unwrap();
    let names: Vec<_> = backends.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dagger", "docker", "local"]);
    let local = &backends[2];
    assert_eq!(local["available"], true);
    assert_eq!(local["isolation"], "process");
    let docker = &backends[1];
    if common::docker_ready("doctor (docker part)") {
        assert_eq!(docker["available"], true, "{v}");
        assert!(!docker["version"].as_str().unwrap().is_empty());
        let images = docker["images"].as_array().unwrap();
        let present = |name: &str| images.iter().find(|i| i["name"] == name).map(|i| i["present"].clone());
        assert_eq!(present(common::BUSYBOX), Some(Value::Bool(true)), "{v}");
        assert_eq!(present(common::NODE), Some(Value::Bool(true)), "{v}");
    }
    assert_eq!(v["stateDir"]["path"], h.state().to_str().unwrap());
    assert_eq!(v["daemon"]["running"], false);
    assert!(v["daemon"]["detail"].is_string());
    let templates: Vec<_> = v["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(templates.contains(&"node") && templates.contains(&"python"), "{v}");
    assert!(!h.state().join("daemon.json").exists(), "doctor started no daemon");

    let out = h.run(&["doctor"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for needle in ["BACKEND", "docker", "local", "process", "state dir", "daemon     not running", "TEMPLATE"] {
        assert!(text.contains(needle), "doctor shows {needle:?}: {text}");
    }
}

#[test]
fn a_broken_templates_file_is_reported_not_fatal_for_doctor_and_fatal_for_validate() {
    let h = Harness::new();
    std::fs::write(h.state().join("templates.json"), "{\"node\": {\"imag\": \"x\"}}").unwrap();
    let v = h.json(&["doctor", "--json"]);
    assert!(v["templatesError"].as_str().unwrap().contains("templates.json"), "{v}");
    let dir = h.project("p", &[("package.json", "{}")]);
    let out = h.run(&["validate", dir.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("templates.json"), "{}", describe(&out));
    assert!(stderr(&out).contains("(INVALID_ARGUMENT)"), "{}", describe(&out));
    // The file is left as the user wrote it.
    assert_eq!(std::fs::read_to_string(h.state().join("templates.json")).unwrap(), "{\"node\": {\"imag\": \"x\"}}");
}

#[test]
fn serve_refuses_a_non_loopback_address() {
    let h = Harness::new();
    let out = h.run(&["serve", "--addr", "0.0.0.0:7878"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("not a loopback address"), "{}", describe(&out));
    assert!(stderr(&out).contains("(INVALID_ARGUMENT)"), "{}", describe(&out));
}

#[test]
fn the_state_dir_can_come_from_the_environment() {
    let h = Harness::new();
    let out = common::run_bounded(
        std::process::Command::new(common::bin()).args(["doctor", "--json"]).env("DAGGER_SANDBOX_STATE_DIR", h.state()),
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stateDir"]["path"], h.state().to_str().unwrap());
}

//! `pause` and `resume` through the real CLI and daemon: a paused session survives a daemon
//! restart (SIGTERM and SIGKILL) and comes back with its files and env; `stop` still ends it.

mod common;

use common::{describe, stdout, Harness};
use nix::sys::signal::Signal;

#[test]
fn a_paused_docker_session_survives_daemon_restarts_and_resumes_with_its_files_and_env() {
    if !common::docker_ready("a_paused_docker_session_survives_daemon_restarts_and_resumes_with_its_files_and_env") {
        return;
    }
    pause_restart_resume(&["--backend", "docker", "--image", "dagger-sandbox-test/busybox:latest"], true);
}

#[test]
fn a_paused_local_session_survives_daemon_restarts_and_resumes_with_its_files() {
    // A local directory does not keep env values across a daemon restart (docs/configuration.md).
    pause_restart_resume(&["--backend", "local"], false);
}

/// Create with `backend`, write, pause, restart the daemon twice, resume: files (and env when
/// `env_kept`) are there.
fn pause_restart_resume(backend: &[&str], env_kept: bool) {
    let h = Harness::new();
    let mut args = vec!["create", "--json", "--env", "KEPT_ENV=env-value"];
    args.extend_from_slice(backend);
    let s = h.json(&args);
    let id = s["id"].as_str().unwrap().to_string();
    let out = h.run(&["exec", &id, "--", "echo kept-file > kept.txt"]);
    assert!(out.status.success(), "{}", describe(&out));

    let paused = h.json(&["pause", &id, "--json"]);
    assert_eq!((paused["status"].as_str(), paused["stoppedBy"].as_str()), (Some("stopped"), Some("user")), "{paused}");
    let out = h.run(&["exec", &id, "--", "true"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("(STOPPED)"), "{}", describe(&out));

    // A clean stop of the daemon, then a kill -9: the paused session is kept, still paused.
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        let before = h.daemon_pid().unwrap();
        assert!(h.signal_daemon(sig), "the daemon got {sig}");
        let listed = h.json(&["list", "--json"]);
        assert_ne!(h.daemon_pid(), Some(before), "a new daemon answers");
        let row = listed["sandboxes"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).cloned();
        assert_eq!(row.as_ref().map(|r| r["status"].clone()), Some("stopped".into()), "{listed}");
        if env_kept {
            assert_eq!(h.containers().len(), 1, "the stopped container is not an orphan");
        }
    }

    let resumed = h.json(&["resume", &id, "--json"]);
    assert_eq!(resumed["status"], "active", "{resumed}");
    let out = h.run(&["exec", &id, "--", "cat kept.txt; echo $KEPT_ENV"]);
    assert!(out.status.success(), "{}", describe(&out));
    let expected = if env_kept { "kept-file\nenv-value\n" } else { "kept-file\n\n" };
    assert_eq!(stdout(&out), expected);

    let out = h.run(&["pause", "sbx-000000000000"]);
    assert!(!out.status.success() && common::stderr(&out).contains("(NOT_FOUND)"), "{}", describe(&out));
    let ended = h.json(&["stop", &id, "--json"]);
    assert_eq!(ended["status"], "terminated");
    assert!(h.containers().is_empty());
    if let Some(dir) = s["containerId"].as_str().filter(|_| !env_kept) {
        assert!(!std::path::Path::new(dir).exists(), "stop removed the local directory");
    }
}

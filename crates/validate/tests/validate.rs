//! The library's validation on the real Docker engine: the progress a caller sees, a failing
//! verdict, and a cancellation that leaves no container behind (the engine removes it once the
//! sandbox is killed).

use std::process::{Command, Stdio};
use std::time::Duration;

use dagger_sandbox::{BackendChoice, CancellationToken, SandboxConfig};
use dagger_sandbox_validate::{validate, Plan, Progress, ValidateError, ValidateOptions};
use tokio::sync::mpsc;

const BUSYBOX: &str = "dagger-sandbox-test/busybox:latest";
const TEST_LABEL: &str = "dev.dagger-sandbox.test-run";

fn docker_ready(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", BUSYBOX])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("DAGGER_SANDBOX_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or {BUSYBOX} is missing");
        }
        eprintln!("SKIPPED {test}: no Docker engine or test image (run scripts/engine.sh)");
    }
    ok
}

/// A busybox sandbox on Docker carrying a label unique to this test run.
fn config(run: &str) -> SandboxConfig {
    SandboxConfig::new().backend(BackendChoice::Docker).image(BUSYBOX).workdir("/app").label(TEST_LABEL, run)
}

fn containers_labelled(run: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={TEST_LABEL}={run}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Whether every container of `run` is gone within a minute: a validation's sandbox is killed when
/// the verdict is in, and the engine deletes its files (thousands, for a node_modules) afterwards.
fn all_gone_within_a_minute(run: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if containers_labelled(run) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("check.sh"), "echo checking; test -f check.sh\n").unwrap();
    std::fs::create_dir(d.path().join("node_modules")).unwrap();
    std::fs::write(d.path().join("node_modules/x"), "").unwrap();
    d
}

#[tokio::test]
async fn a_passing_then_failing_project_reports_each_step_and_its_progress() {
    if !docker_ready("a_passing_then_failing_project_reports_each_step_and_its_progress") {
        return;
    }
    let run = format!("pass-{}", std::process::id());
    let dir = project();
    let plan =
        Plan::for_project(dir.path(), Some("test ! -e node_modules && echo installed"), Some("sh check.sh")).unwrap();
    let (tx, mut rx) = mpsc::channel(256);
    let opts = ValidateOptions { progress: Some(tx), ..Default::default() };
    let report = validate(config(&run), &plan, opts).await.unwrap();
    assert!(report.passed, "{report:?}");
    assert_eq!(report.backend, "docker");
    assert_eq!(report.steps.len(), 2);
    assert_eq!(report.steps[0].stdout_tail, "installed");
    assert_eq!(report.steps[1].stdout_tail, "checking");
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(match p {
            Progress::Creating => "creating".to_string(),
            Progress::Created { isolation, .. } => format!("created {isolation}"),
            Progress::Copying => "copying".into(),
            Progress::StepStarted { name, .. } => format!("start {name}"),
            Progress::Output(c) => format!("output {}", String::from_utf8_lossy(&c.data).trim()),
            Progress::StepFinished(s) => format!("end {} {}", s.name, s.exit_code),
        });
    }
    assert_eq!(
        seen,
        [
            "creating",
            "created container",
            "copying",
            "start install",
            "output installed",
            "end install 0",
            "start test",
            "output checking",
            "end test 0"
        ]
    );

    // A failing install stops the run: the test step never runs, and the verdict says so.
    let plan = Plan::for_project(dir.path(), Some("echo broken >&2; exit 3"), Some("sh check.sh")).unwrap();
    let report = validate(config(&run), &plan, ValidateOptions::default()).await.unwrap();
    assert!(!report.passed);
    assert_eq!(report.steps.len(), 1);
    assert_eq!((report.steps[0].exit_code, report.steps[0].stderr_tail.as_str()), (3, "broken"));
    assert_eq!(report.failed_step().map(|s| s.name.as_str()), Some("install"));
    assert!(all_gone_within_a_minute(&run), "every sandbox was removed");
}

#[tokio::test]
async fn a_step_past_its_timeout_is_a_verdict_and_cancelling_removes_the_sandbox() {
    if !docker_ready("a_step_past_its_timeout_is_a_verdict_and_cancelling_removes_the_sandbox") {
        return;
    }
    let run = format!("cancel-{}", std::process::id());
    let dir = project();
    let plan = Plan::for_project(dir.path(), Some(""), Some("echo started; sleep 300")).unwrap();
    let opts = ValidateOptions { step_timeout: Duration::from_secs(2), ..Default::default() };
    let report = validate(config(&run), &plan, opts).await.unwrap();
    assert!(!report.passed && report.steps[0].timed_out, "{report:?}");
    assert!(report.steps[0].stdout_tail.contains("started"), "{report:?}");

    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(64);
    let opts = ValidateOptions { cancel: cancel.clone(), progress: Some(tx), ..Default::default() };
    let running = tokio::spawn(async move { validate(config(&run), &plan, opts).await });
    // Cancel once the long step is running.
    while let Some(p) = rx.recv().await {
        if matches!(p, Progress::StepStarted { .. }) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(30), running).await.expect("cancel is prompt").unwrap();
    assert!(matches!(err, Err(ValidateError::Cancelled)), "{err:?}");
    assert_eq!(err.unwrap_err().code().as_str(), "CANCELLED");
    let run = format!("cancel-{}", std::process::id());
    assert!(all_gone_within_a_minute(&run), "a cancelled validation leaves no container");
}

//! The real binary under hostile input: bad flags and values, ids that are paths, URLs or 100 KB
//! long, commands as big as the OS allows, bad files in the state dir. Each answer is typed (a usage
//! error with exit 2, or exit 1 with `error: <message> (<CODE>)`), nothing panics, and the daemon
//! the commands started keeps serving.

mod common;

use std::process::Output;

use common::{describe, stderr, Harness, BUSYBOX};

/// The codes an `error: ... (<CODE>)` line may end with (docs/cli.md, docs/rest-api.md).
const CODES: &[&str] = &[
    "INVALID_ARGUMENT",
    "INVALID_PATH",
    "RESTRICTED_PATH",
    "NOT_FOUND",
    "TIMEOUT",
    "CANCELLED",
    "CLOSED",
    "ENGINE_UNAVAILABLE",
    "ENGINE_ERROR",
    "IO_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "SESSION_ENDED",
    "QUOTA_EXCEEDED",
    "TOO_LARGE",
    "INTERNAL",
];

/// What a hostile input must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// A usage error from the argument parser: exit 2, `error:` on stderr.
    Usage,
    /// Exit 1 with `error: <message> (<CODE>)`.
    Coded(&'static str),
}

/// Whether `out` is the typed answer `want`; the reason when it is not.
fn check(out: &Output, want: Want) -> Result<(), String> {
    let err = stderr(out);
    if err.contains("panicked") || out.status.code().is_none() {
        return Err(format!("crashed: {}", describe(out)));
    }
    if !err.starts_with("error:") {
        return Err(format!("no `error:` line: {}", describe(out)));
    }
    match want {
        Want::Usage if out.status.code() == Some(2) => Ok(()),
        Want::Coded(code) => {
            let last = err.trim_end().lines().last().unwrap_or("");
            let got = last.rsplit_once(" (").and_then(|(_, c)| c.strip_suffix(')')).unwrap_or("");
            if out.status.code() == Some(1) && got == code && CODES.contains(&got) {
                Ok(())
            } else {
                Err(format!("expected exit 1 and ({code}): {}", describe(out)))
            }
        }
        Want::Usage => Err(format!("expected a usage error (exit 2): {}", describe(out))),
    }
}

#[test]
fn every_hostile_input_gets_a_typed_error_and_the_daemon_keeps_serving() {
    let h = Harness::new();
    let big = "a".repeat(100_000);
    let project = h.project("p", &[("package.json", "{}")]);
    let project = project.to_str().unwrap();
    let file = h.project("f", &[("plain.txt", "x")]).join("plain.txt");
    let file = file.to_str().unwrap();
    use Want::{Coded, Usage};
    let cases: Vec<(Vec<&str>, Want)> = vec![
        // The argument parser.
        (vec!["frobnicate"], Usage),
        (vec![&big], Usage),
        (vec!["exec"], Usage),
        (vec!["exec", "sbx-1"], Usage),
        (vec!["exec", "sbx-1", "true"], Usage),
        (vec!["exec", "--timeout", "soon", "sbx-1", "--", "true"], Usage),
        (vec!["create", "--port", "0", "--", "true"], Usage),
        (vec!["create", "--port", "70000", "--", "true"], Usage),
        (vec!["create", "--port", "-1"], Usage),
        (vec!["create", "--ttl", "soon"], Usage),
        (vec!["create", "--backend", "kubernetes"], Usage),
        (vec!["create", "-e", "NOEQUALS"], Usage),
        (vec!["serve", "--reap-interval", "often"], Usage),
        (vec!["serve", "--addr", "not-an-address"], Usage),
        (vec!["serve", "--max-sandboxes", "-1"], Usage),
        (vec!["serve", "--max-sandboxes", "many"], Usage),
        (vec!["serve", "--header-timeout", "forever"], Usage),
        (vec!["list", "--bogus"], Usage),
        (vec!["logs"], Usage),
        (vec!["stop"], Usage),
        (vec!["doctor", "--json", "extra"], Usage),
        (vec!["validate", "--backend", "podman", project], Usage),
        // Checks before any daemon.
        (vec!["serve", "--addr", "0.0.0.0:7878"], Coded("INVALID_ARGUMENT")),
        (vec!["serve", "--max-sandboxes", "0"], Coded("INVALID_ARGUMENT")),
        (vec!["serve", "--reap-interval", "0s"], Coded("INVALID_ARGUMENT")),
        (vec!["serve", "--header-timeout", "0s"], Coded("INVALID_ARGUMENT")),
        (vec!["validate", "/nonexistent/dir"], Coded("INVALID_ARGUMENT")),
        (vec!["validate", file], Coded("INVALID_ARGUMENT")),
        (vec!["validate", "--template", "cobol", "--test", "true", project], Coded("INVALID_ARGUMENT")),
        // Through the daemon (started by the first of these).
        (vec!["exec", "sbx-nope", "--", "true"], Coded("NOT_FOUND")),
        (vec!["logs", "sbx-nope"], Coded("NOT_FOUND")),
        (vec!["stop", "sbx-nope"], Coded("NOT_FOUND")),
        (vec!["stop", "sbx-nope", "--json"], Coded("NOT_FOUND")),
        (vec!["stop", ".."], Coded("NOT_FOUND")),
        (vec!["stop", "../sandbox"], Coded("NOT_FOUND")),
        (vec!["exec", "../../etc", "--", "true"], Coded("NOT_FOUND")),
        (vec!["exec", "", "--", "true"], Usage),
        (vec!["exec", "sbx\nnope", "--", "true"], Usage),
        (vec!["exec", "?all=true", "--", "true"], Coded("NOT_FOUND")),
        (vec!["exec", "sbx-%2e%2e", "--", "true"], Coded("NOT_FOUND")),
        (vec!["exec", &big, "--", "true"], Usage),
        (vec!["exec", "sbx-nope", "--", &big], Coded("NOT_FOUND")),
        (vec!["logs", &big], Usage),
        (vec!["stop", "\u{1b}[2J"], Usage),
        (vec!["exec", "sbx-nope", "-e", "=x", "--", "true"], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--image", ""], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--template", "cobol"], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--image", BUSYBOX, "--workdir", "relative"], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--image", BUSYBOX, "--ttl", "0s"], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--image", BUSYBOX, "--ttl", "1000000y"], Coded("INVALID_ARGUMENT")),
        (vec!["create", "--image", BUSYBOX, "--port", "8080"], Coded("INVALID_ARGUMENT")),
    ];
    let total = cases.len();
    let mut typed = 0;
    let mut wrong = Vec::new();
    let mut daemon = None;
    for (args, want) in &cases {
        let out = h.run(args);
        match check(&out, *want) {
            Ok(()) => typed += 1,
            Err(why) => {
                wrong.push(format!("{:?}: {why}", args.iter().map(|a| &a[..a.len().min(40)]).collect::<Vec<_>>()))
            }
        }
        // Once a daemon runs, it is the same one after every input.
        if let Some(pid) = h.daemon_pid() {
            assert_eq!(*daemon.get_or_insert(pid), pid, "the daemon was replaced after {args:?}");
        }
    }
    println!("cli hostile inputs: {total}, typed errors: {typed}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(total >= 40);
    assert!(daemon.is_some(), "the daemon-backed cases started a daemon");
    let list = h.json(&["list", "--all", "--json"]);
    assert_eq!(list["sandboxes"], serde_json::json!([]), "hostile input created nothing");
    assert!(h.containers().is_empty());
}

#[test]
fn bad_files_in_the_state_dir_are_typed_errors() {
    // A templates.json the daemon cannot read stops its start, with the file and the problem named
    // (the daemon's own error is quoted from its log; the CLI's wrapper carries no code yet).
    let h = Harness::new();
    std::fs::write(h.state().join("templates.json"), r#"{"node": {"imag": 1}}"#).unwrap();
    let out = h.run(&["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("templates.json") && stderr(&out).contains("imag"), "{}", describe(&out));

    // A state dir that is a file.
    let h = Harness::new();
    let file = h.state().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = common::run_bounded(
        std::process::Command::new(common::bin()).arg("--state-dir").arg(&file).arg("list"),
        std::time::Duration::from_secs(60),
    );
    check(&out, Want::Coded("IO_ERROR")).unwrap();

    // A daemon.json that is not JSON is ignored: a daemon is started and answers.
    let h = Harness::new();
    std::fs::write(h.state().join("daemon.json"), "garbage{").unwrap();
    let out = h.run(&["list", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
}

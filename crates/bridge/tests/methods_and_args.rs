//! The bridge's command line, every sandbox method's result shape, and the request mistakes a
//! client makes (params that are not an object, a wrong `sandboxId`, an id reused while its
//! request runs): each gets its documented answer and the bridge keeps working.

mod common;

use std::process::Command;

use common::{code, Bridge};
use serde_json::json;

fn bridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dagger-sandbox-bridge")).args(args).output().unwrap()
}

#[test]
fn the_command_line_answers_version_and_help_and_refuses_bad_arguments() {
    let v = bridge(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stderr).contains(env!("CARGO_PKG_VERSION")), "{v:?}");
    assert!(v.stdout.is_empty(), "stdout carries protocol messages only");
    let h = bridge(&["--help"]);
    assert!(h.status.success() && String::from_utf8_lossy(&h.stderr).contains("usage: dagger-sandbox-bridge"));
    for (args, says) in [
        (&["--max-line-bytes", "100"][..], "--max-line-bytes must be at least 1024"),
        (&["--max-line-bytes", "many"][..], "not a number"),
        (&["--verbose"][..], "unknown argument \"--verbose\""),
    ] {
        let out = bridge(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn every_sandbox_method_answers_with_its_documented_result() {
    let mut b = Bridge::started();
    let id = b.create();
    let host = tempfile::tempdir().unwrap();

    assert_eq!(b.ok("sandbox/setWorkdir", json!({"sandboxId": id, "path": "/srv"}))["workdir"], "/srv");
    assert_eq!(b.ok("sandbox/withEnv", json!({"sandboxId": id, "env": {"GREETING": "hi"}})), json!({}));
    let written = b.ok(
        "sandbox/writeFiles",
        json!({"sandboxId": id, "files": [{"path": "a.txt", "content": "A"}, {"path": "d/b.txt", "content": "Qg==", "encoding": "base64"}]}),
    );
    assert_eq!(written, json!({"written": 2}));
    let r = b.ok(
        "sandbox/exec",
        json!({"sandboxId": id, "command": "cat; echo \" $GREETING $(pwd) $(cat d/b.txt)\"", "stdin": "in"}),
    );
    assert_eq!(r["stdout"], "in hi /srv B\n", "{r}");

    // Host copies both ways, and an export of the tree.
    let landed = host.path().join("a.txt");
    assert_eq!(
        b.ok("sandbox/readFileToHost", json!({"sandboxId": id, "path": "a.txt", "hostPath": landed}))["size"],
        1
    );
    assert_eq!(std::fs::read_to_string(&landed).unwrap(), "A");
    let r =
        b.call("sandbox/readFileToHost", json!({"sandboxId": id, "path": "a.txt", "hostPath": landed, "mode": 420}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_ARGUMENT", "{r}");
    assert_eq!(
        b.ok(
            "sandbox/exportDirectory",
            json!({"sandboxId": id, "containerPath": "/srv", "hostPath": host.path().join("out")})
        ),
        json!({})
    );
    assert_eq!(std::fs::read_to_string(host.path().join("out/d/b.txt")).unwrap(), "B");
    assert_eq!(
        b.ok("sandbox/refreshFromHost", json!({"sandboxId": id, "hostPath": host.path().join("out"), "containerPath": "/copy", "exclude": ["a.txt"]})),
        json!({})
    );
    let names: Vec<_> = b.ok("sandbox/listDirectory", json!({"sandboxId": id, "path": "/copy"}))["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["d"], "the excluded file stayed out");
    assert_eq!(b.ok("sandbox/deleteFile", json!({"sandboxId": id, "path": "/copy"})), json!({}));

    assert_eq!(b.ok("sandbox/close", json!({"sandboxId": id})), json!({}));
    let r = b.call("sandbox/exec", json!({"sandboxId": id, "command": "true"}));
    assert_eq!(r["error"]["data"]["code"], "CLOSED", "a closed sandbox says so: {r}");
    assert_eq!(b.finish().0, 0);
}

#[test]
fn malformed_requests_get_invalid_params_or_request_and_the_bridge_keeps_answering() {
    let mut b = Bridge::started();
    let id = b.create();
    for (params, says) in [
        (json!(["not", "an", "object"]), "params must be an object"),
        (json!({"sandboxId": 7, "path": "x", "content": ""}), "`sandboxId`: expected a string, got 7"),
        (json!({"path": "x", "content": ""}), "missing field `sandboxId`"),
    ] {
        let r = b.call("sandbox/writeFile", params);
        assert_eq!(code(&r), -32602, "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains(says), "{r}");
    }
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("package.json"), r#"{"scripts":{"test":"true"}}"#).unwrap();
    let r = b.call("project/validate", json!({"projectDir": project.path(), "stepTimeoutMs": 0}));
    assert_eq!(code(&r), -32602, "{r}");

    // An id reused while its request still runs: the second is refused, the first still answers.
    b.send(json!("dup"), "sandbox/exec", json!({"sandboxId": id, "command": "sleep 1; echo first"}));
    b.send(json!("dup"), "sandbox/exec", json!({"sandboxId": id, "command": "echo second"}));
    let refused = b.recv();
    assert_eq!(refused["id"], "dup");
    assert_eq!(code(&refused), -32600, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("already in use"), "{refused}");
    let first = b.recv();
    assert_eq!((first["id"].clone(), first["result"]["stdout"].clone()), (json!("dup"), json!("first\n")), "{first}");
    b.ok("sandbox/close", json!({"sandboxId": id}));
    assert_eq!(b.finish().0, 0);
}

//! `sandbox/stop` and `sandbox/resume` through the real bridge binary.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_stopped_sandbox_refuses_calls_with_stopped_and_resumes_with_its_files() {
    let mut b = Bridge::started();
    let sb = b.create();
    b.ok("sandbox/writeFile", json!({"sandboxId": sb, "path": "kept.txt", "content": "kept"}));
    b.ok("sandbox/withEnv", json!({"sandboxId": sb, "env": {"KEPT": "yes"}}));
    let r = b.ok("sandbox/stop", json!({"sandboxId": sb}));
    assert_eq!(r["stopped"], true, "{r}");
    let r = b.call("sandbox/exec", json!({"sandboxId": sb, "command": "true"}));
    assert_eq!(r["error"]["data"]["code"], "STOPPED", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("resume"), "{r}");
    let r = b.ok("sandbox/resume", json!({"sandboxId": sb}));
    assert_eq!(r["stopped"], false, "{r}");
    let r = b.ok("sandbox/exec", json!({"sandboxId": sb, "command": "cat kept.txt; echo \" $KEPT\""}));
    assert_eq!(r["stdout"], "kept yes\n", "{r}");
    let r = b.call("sandbox/stop", json!({"sandboxId": "sbx-000000000000"}));
    assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "{r}");
    let r = b.call("sandbox/stop", json!({"sandboxId": sb, "extra": 1}));
    assert_eq!(code(&r), -32602, "{r}");
    // EOF closes a stopped sandbox too.
    b.ok("sandbox/stop", json!({"sandboxId": sb}));
    let (status, _) = b.finish();
    assert_eq!(status, 0);
    if docker_here() {
        assert_eq!(managed_containers(&[sb]), 0, "nothing left");
    }
}

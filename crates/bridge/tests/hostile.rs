//! The real bridge binary under hostile input: every bad line or request gets a typed JSON-RPC
//! error (and a stable code for sandbox failures), and the bridge keeps answering after each.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn hostile_input_gets_exact_errors_and_the_bridge_keeps_answering() {
    let mut b = Bridge::start(&["--max-line-bytes", "4096"]);
    // Before initialize: -32002.
    assert_eq!(code(&b.call("sandbox/create", json!({}))), -32002);
    b.ok("initialize", json!({"protocolVersion": "1", "clientInfo": {"name": "test", "version": "0"}}));
    assert_eq!(code(&b.call("initialize", json!({"protocolVersion": "1"}))), -32600, "a second initialize");
    let sb = b.ok("sandbox/create", json!({"backend": "local"}))["sandboxId"].as_str().unwrap().to_string();
    let alive = |b: &mut Bridge| {
        let r = b.ok("sandbox/writeFile", json!({"sandboxId": sb, "path": "alive.txt", "content": "yes"}));
        assert_eq!(r, json!({}));
    };

    let garbage: &[(&[u8], i64)] = &[
        (b"{not json", -32700),
        (b"\xff\xfe\x00garbage", -32700),
        (b"[1,2,3]", -32600),
        (br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#, -32600),
        (b"42", -32600),
        (br#"{"id":5,"method":"sandbox/close"}"#, -32600),
        (br#"{"jsonrpc":"1.0","id":5,"method":"sandbox/close"}"#, -32600),
        (br#"{"jsonrpc":"2.0","id":{"x":1},"method":"sandbox/close"}"#, -32600),
        (br#"{"jsonrpc":"2.0","id":6,"method":7}"#, -32600),
    ];
    for (line, want) in garbage {
        b.send_raw(line);
        let r = b.recv();
        assert_eq!(code(&r), *want, "for {:?}: {r}", String::from_utf8_lossy(line));
        assert_eq!(r["jsonrpc"], "2.0");
        alive(&mut b);
    }
    // The id is echoed exactly when it could be read.
    b.send_raw(br#"{"jsonrpc":"1.0","id":"abc","method":"x"}"#);
    assert_eq!(b.recv()["id"], "abc");

    // An over-long line: an error naming the limit, and the next line is served.
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"sandbox/writeFile","params":{{"content":"{}"}}}}"#,
        "x".repeat(10_000)
    );
    b.send_raw(long.as_bytes());
    let r = b.recv();
    assert_eq!((code(&r), &r["id"]), (-32600, &Value::Null), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("4096"), "{r}");
    alive(&mut b);

    // Wrong params: -32602 naming the field.
    let cases = [
        (json!({"sandboxId": sb, "path": 5}), "path"),
        (json!({"sandboxId": sb}), "path"),
        (json!({"sandboxId": sb, "path": "a", "pth": "b"}), "pth"),
        (json!({"sandboxId": 1, "path": "a"}), "sandboxId"),
        (json!({"sandboxId": sb, "path": "a", "encoding": "hex"}), "encoding"),
    ];
    for (params, field) in cases {
        let r = b.call("sandbox/readFile", params.clone());
        assert_eq!(code(&r), -32602, "{params}: {r}");
        assert!(r["error"]["message"].as_str().unwrap().contains(field), "{params}: {r}");
    }
    let r = b.call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "timeoutMs": "soon"}));
    assert!(code(&r) == -32602 && r["error"]["message"].as_str().unwrap().contains("timeoutMs"), "{r}");
    let r = b.call("sandbox/writeFile", json!({"sandboxId": sb, "path": "a", "content": "%%%", "encoding": "base64"}));
    assert_eq!(code(&r), -32602, "{r}");
    let r = b.call("sandbox/readFile", json!([sb, "a"]));
    assert_eq!(code(&r), -32602, "{r}");

    // Unknown method, unknown sandbox, sandbox errors with stable codes.
    let r = b.call("sandbox/teleport", json!({}));
    assert_eq!((code(&r), &r["error"]["data"]["method"]), (-32601, &json!("sandbox/teleport")));
    let r = b.call("sandbox/readFile", json!({"sandboxId": "sbx-nope", "path": "a"}));
    assert_eq!((code(&r), &r["error"]["data"]["code"]), (-32000, &json!("NOT_FOUND")), "{r}");
    let r = b.call("sandbox/readFile", json!({"sandboxId": sb, "path": "missing.txt"}));
    assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "{r}");
    let r = b.call("sandbox/writeFile", json!({"sandboxId": sb, "path": "", "content": "x"}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_PATH", "{r}");
    let r = b.call("sandbox/withEnv", json!({"sandboxId": sb, "env": {"A=B": "x"}}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_ARGUMENT", "{r}");
    // Ids: 92 and "92" are different requests; a notification gets no answer.
    b.send(json!(92), "sandbox/listDirectory", json!({"sandboxId": sb}));
    b.send(json!("92"), "sandbox/listDirectory", json!({"sandboxId": sb}));
    b.send_raw(br#"{"jsonrpc":"2.0","method":"initialized"}"#);
    let mut ids = vec![b.recv()["id"].clone(), b.recv()["id"].clone()];
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, [json!("92"), json!(92)]);
    alive(&mut b);
    b.ok("sandbox/close", json!({"sandboxId": sb}));
    let r = b.call("sandbox/readFile", json!({"sandboxId": sb, "path": "alive.txt"}));
    assert_eq!(r["error"]["data"]["code"], "CLOSED", "{r}");
    let (status, rest) = b.finish();
    assert_eq!(status, 0);
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn ids_and_modes_that_would_be_altered_are_refused() {
    let mut b = Bridge::started();
    // An integer id beyond 64 bits would come back as a float no client can match.
    b.send_raw(br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"sandbox/create","params":{}}"#);
    let r = b.recv();
    assert_eq!((code(&r), &r["id"]), (-32600, &Value::Null), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("64 bits"), "{r}");
    // The largest 64-bit id is echoed exactly.
    b.send_raw(br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"nope/x","params":{}}"#);
    let line = b.lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(line.contains(r#""id":18446744073709551615"#), "{line}");
    // A mode above 0o7777 is refused, not masked into another mode.
    let sb = b.ok("sandbox/create", json!({"backend": "local"}))["sandboxId"].as_str().unwrap().to_string();
    let r = b.call("sandbox/writeFile", json!({"sandboxId": sb, "path": "m.txt", "content": "x", "mode": 99_999_999}));
    assert_eq!(r["error"]["data"]["code"], "INVALID_ARGUMENT", "{r}");
    let r = b.call("sandbox/readFile", json!({"sandboxId": sb, "path": "m.txt"}));
    assert_eq!(r["error"]["data"]["code"], "NOT_FOUND", "nothing was written: {r}");
    let (status, _) = b.finish();
    assert_eq!(status, 0);
}

/// One hostile input: a raw line, or a request with these params.
enum Hostile {
    Raw(Vec<u8>),
    Call(&'static str, Value),
}

#[test]
fn every_hostile_input_gets_a_typed_error_and_the_bridge_keeps_answering() {
    use Hostile::{Call, Raw};
    let mut b = Bridge::start(&["--max-line-bytes", "4096"]);
    b.ok("initialize", json!({"protocolVersion": "1"}));
    let sb = b.ok("sandbox/create", json!({"backend": "local"}))["sandboxId"].as_str().unwrap().to_string();
    let raw = |s: &str| Raw(s.as_bytes().to_vec());
    let nested = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let long_method = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#, "x".repeat(3000));
    let over_long = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":"{}"}}}}"#, "y".repeat(5000));
    let busybox = |extra: Value| {
        let mut c = json!({"backend": "docker", "image": BUSYBOX});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    // (input, JSON-RPC code, the stable code in `data` for -32000)
    let cases: Vec<(Hostile, i64, Option<&str>)> = vec![
        (raw("{not json"), -32700, None),
        (Raw(b"\xff\xfe\x00garbage".to_vec()), -32700, None),
        (raw(&nested), -32700, None),
        (raw(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":1e999}}"#), -32700, None),
        (raw(r#"{"jsonrpc":"2.0","id":"\ud800","method":"x"}"#), -32700, None),
        (raw("[]"), -32600, None),
        (raw("[1,2,3]"), -32600, None),
        (raw(r#""a string""#), -32600, None),
        (raw("null"), -32600, None),
        (raw("true"), -32600, None),
        (raw("42"), -32600, None),
        (raw("{}"), -32600, None),
        (raw(r#"{"jsonrpc":"2.0"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":1}"#), -32600, None),
        (raw(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"x"}"#), -32600, None),
        (raw(&over_long), -32600, None),
        (raw(r#"{"jsonrpc":"2.0","id":1,"method":""}"#), -32601, None),
        (raw(r#"{"jsonrpc":"2.0","id":1,"method":"x\u0000"}"#), -32601, None),
        (raw(&long_method), -32601, None),
        (Call("sandbox/teleport", json!({})), -32601, None),
        (raw(r#"{"jsonrpc":"2.0","id":1,"method":"sandbox/create","params":"x"}"#), -32602, None),
        (raw(r#"{"jsonrpc":"2.0","id":1,"method":"sandbox/exec","params":null}"#), -32602, None),
        (Call("sandbox/readFile", json!([sb, "a"])), -32602, None),
        (Call("sandbox/exec", json!({"command": "true"})), -32602, None),
        (Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "timeoutMs": -1})), -32602, None),
        (Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "timeoutMs": "soon"})), -32602, None),
        (Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "stdin": 5})), -32602, None),
        (
            Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "timeoutMs": 0})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (
            Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "env": {"": "x"}})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (
            Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "env": {"A=B": "x"}})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (
            Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "env": {"A": "x\0"}})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (
            Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "cwd": "/nonexistent"})),
            -32000,
            Some("NOT_FOUND"),
        ),
        (Call("sandbox/exec", json!({"sandboxId": sb, "command": "true", "cwd": "a\0"})), -32000, Some("INVALID_PATH")),
        (Call("sandbox/exec", json!({"sandboxId": "sbx-nope", "command": "true"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/readFile", json!({"sandboxId": sb, "path": "a\0b"})), -32000, Some("INVALID_PATH")),
        (Call("sandbox/readFile", json!({"sandboxId": sb, "path": "/"})), -32000, Some("INVALID_ARGUMENT")),
        (Call("sandbox/readFile", json!({"sandboxId": sb, "path": "../../../etc/shadow"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/readFile", json!({"sandboxId": sb, "path": "a", "encoding": "hex"})), -32602, None),
        (
            Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "/", "content": "x"})),
            -32000,
            Some("INVALID_PATH"),
        ),
        (Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "", "content": "x"})), -32000, Some("INVALID_PATH")),
        (Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "a", "content": "x", "mode": -1})), -32602, None),
        (
            Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "a", "content": "x", "mode": 0o10000})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "a", "content": 5})), -32602, None),
        (
            Call("sandbox/writeFile", json!({"sandboxId": sb, "path": "a", "content": "%%%", "encoding": "base64"})),
            -32602,
            None,
        ),
        (
            Call("sandbox/writeFiles", json!({"sandboxId": sb, "files": [{"path": "", "content": "x"}]})),
            -32000,
            Some("INVALID_PATH"),
        ),
        (Call("sandbox/writeFiles", json!({"sandboxId": sb, "files": "x"})), -32602, None),
        (Call("sandbox/deleteFile", json!({"sandboxId": sb, "path": "/"})), -32000, Some("INVALID_PATH")),
        (Call("sandbox/deleteFile", json!({"sandboxId": sb, "path": "nope/nope"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/listDirectory", json!({"sandboxId": sb, "path": "nope"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/setWorkdir", json!({"sandboxId": sb, "path": "a\0"})), -32000, Some("INVALID_PATH")),
        (Call("sandbox/withEnv", json!({"sandboxId": sb, "env": "x"})), -32602, None),
        (
            Call(
                "sandbox/exportDirectory",
                json!({"sandboxId": sb, "containerPath": "nope", "hostPath": "/nonexistent/out"}),
            ),
            -32000,
            Some("NOT_FOUND"),
        ),
        (
            Call(
                "sandbox/refreshFromHost",
                json!({"sandboxId": sb, "hostPath": "/nonexistent/dir", "containerPath": "/workspace"}),
            ),
            -32000,
            Some("IO_ERROR"),
        ),
        (Call("sandbox/create", json!({"backend": "podman"})), -32602, None),
        (Call("sandbox/create", json!({"bogus": 1})), -32602, None),
        (Call("sandbox/create", busybox(json!({"ports": [70000]}))), -32602, None),
        (Call("sandbox/create", busybox(json!({"image": ""}))), -32000, Some("INVALID_ARGUMENT")),
        (Call("sandbox/create", busybox(json!({"ports": [0]}))), -32000, Some("INVALID_ARGUMENT")),
        (Call("sandbox/create", json!({"backend": "local", "workdir": "relative"})), -32000, Some("INVALID_ARGUMENT")),
        (Call("sandbox/create", json!({"template": "cobol"})), -32000, Some("INVALID_ARGUMENT")),
        (Call("sandbox/create", json!({"backend": "local", "timeoutMs": 0})), -32000, Some("INVALID_ARGUMENT")),
        (
            Call("sandbox/create", json!({"backend": "local", "restrictedPaths": ["[invalid"]})),
            -32000,
            Some("INVALID_ARGUMENT"),
        ),
        (Call("sandbox/close", json!({"sandboxId": "sbx-nope"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/fork", json!({"sandboxId": "sbx-nope"})), -32000, Some("NOT_FOUND")),
        (Call("sandbox/fork", json!({})), -32602, None),
        (Call("initialize", json!({"protocolVersion": "1"})), -32600, None),
    ];
    let total = cases.len();
    let mut typed = 0;
    for (input, want, want_data) in cases {
        let (r, what) = match input {
            Raw(line) => {
                b.send_raw(&line);
                (b.recv(), String::from_utf8_lossy(&line).chars().take(80).collect::<String>())
            }
            Call(method, params) => (b.call(method, params.clone()), format!("{method} {params}")),
        };
        assert_eq!(r["jsonrpc"], "2.0", "{what}: {r}");
        assert_eq!(code(&r), want, "{what}: {r}");
        assert!(r["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {r}");
        assert_eq!(r["error"]["data"]["code"].as_str(), want_data, "{what}: {r}");
        typed += 1;
        // Still alive and still serving the sandbox after every input.
        let r = b.ok("sandbox/writeFile", json!({"sandboxId": sb, "path": "alive.txt", "content": "yes"}));
        assert_eq!(r, json!({}));
    }
    println!("bridge hostile inputs: {total}, typed errors: {typed}");
    assert!(total >= 40);
    b.ok("sandbox/close", json!({"sandboxId": sb}));
    let (status, rest) = b.finish();
    assert_eq!(status, 0);
    assert!(rest.is_empty(), "{rest:?}");
}

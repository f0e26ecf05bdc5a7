//! JSON-RPC 2.0 envelopes: telling requests, notifications and garbage apart, and the error
//! objects every failure becomes.

use dagger_sandbox::{Error, ErrorCode};
use serde_json::{json, Map, Value};

/// The protocol versions this bridge speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["1"];

/// JSON-RPC error codes used by the bridge.
pub mod codes {
    /// The line is not UTF-8 JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC 2.0 request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params missing or of the wrong shape.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A bug in the bridge.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A request before `initialize`.
    pub const NOT_INITIALIZED: i64 = -32002;
    /// The request was cancelled by `$/cancelRequest`.
    pub const REQUEST_CANCELLED: i64 = -32800;
    /// A sandbox operation failed; `data.code` says how.
    pub const SANDBOX_ERROR: i64 = -32000;
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The JSON-RPC code.
    pub code: i64,
    /// A sentence for people.
    pub message: String,
    /// Structured detail (`{"code": "NOT_FOUND"}` for sandbox errors).
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// `-32602` naming the field that is wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(codes::INVALID_PARAMS, format!("invalid params: {}", message.into()))
    }

    /// The error object as JSON.
    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

impl From<Error> for RpcError {
    fn from(e: Error) -> Self {
        let code = e.code();
        let mut data = json!({"code": code.as_str()});
        if let Some(partial) = e.partial_output() {
            data["partial"] = crate::methods::exec_result_json(partial, None);
        }
        let rpc = if code == ErrorCode::Cancelled { codes::REQUEST_CANCELLED } else { codes::SANDBOX_ERROR };
        RpcError { code: rpc, message: e.to_string(), data: Some(data) }
    }
}

/// A well-formed incoming message.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A request: must be answered with its `id`.
    Request {
        /// The id exactly as sent (number or string).
        id: Value,
        /// The method name.
        method: String,
        /// The params (`Value::Null` when absent).
        params: Value,
    },
    /// A notification: never answered.
    Notification {
        /// The method name.
        method: String,
        /// The params (`Value::Null` when absent).
        params: Value,
    },
}

/// Parses one line. `Err` carries the id to answer with (`null` when none could be read).
pub fn parse(line: &[u8]) -> Result<Option<Incoming>, (Value, RpcError)> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        (Value::Null, RpcError::new(codes::PARSE_ERROR, format!("parse error: the line is not valid UTF-8 ({e})")))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (Value::Null, RpcError::new(codes::PARSE_ERROR, format!("parse error: {e}"))))?;
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batches (JSON arrays) are not supported"
        } else {
            "a message must be a JSON object"
        };
        return Err((Value::Null, RpcError::new(codes::INVALID_REQUEST, format!("invalid request: {what}"))));
    };
    let id = match obj.remove("id") {
        None => None,
        // An integer beyond 64 bits would come back as a float (1.2345678901234568e+29), which
        // no client could match to its request: such ids are refused, not altered.
        Some(Value::Number(n)) if n.is_f64() => {
            return Err((
                Value::Null,
                RpcError::new(
                    codes::INVALID_REQUEST,
                    format!("invalid request: a numeric `id` must be an integer within 64 bits, got {n}; use a string"),
                ),
            ))
        }
        Some(id @ (Value::Number(_) | Value::String(_))) => Some(id),
        Some(other) => {
            return Err((
                Value::Null,
                RpcError::new(
                    codes::INVALID_REQUEST,
                    format!("invalid request: `id` must be a number or a string, got {other}"),
                ),
            ))
        }
    };
    let invalid = |id: &Option<Value>, msg: &str| {
        (id.clone().unwrap_or(Value::Null), RpcError::new(codes::INVALID_REQUEST, format!("invalid request: {msg}")))
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return Err(invalid(&id, "`jsonrpc` must be \"2.0\"")),
        None => return Err(invalid(&id, "`jsonrpc` is missing; it must be \"2.0\"")),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(invalid(&id, "`method` must be a string")),
        None => return Err(invalid(&id, "`method` is missing")),
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    Ok(Some(match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    }))
}

/// A success response.
pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()})
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// Deserializes params, naming the offending field on failure. Absent params count as `{}`.
pub fn params<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    let params = match params {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => params,
        other => return Err(RpcError::invalid_params(format!("params must be an object, got {other}"))),
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            RpcError::invalid_params(inner.to_string())
        } else {
            RpcError::invalid_params(format!("`{path}`: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(line: &str) -> i64 {
        parse(line.as_bytes()).unwrap_err().1.code
    }

    #[test]
    fn requests_and_notifications_are_told_apart() {
        let r = parse(br#"{"jsonrpc":"2.0","id":"7","method":"m","params":{"a":1}}"#).unwrap().unwrap();
        assert_eq!(r, Incoming::Request { id: json!("7"), method: "m".into(), params: json!({"a":1}) });
        let n = parse(br#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}"#).unwrap().unwrap();
        assert!(matches!(n, Incoming::Notification { .. }));
        assert_eq!(parse(b"   ").unwrap(), None);
        assert!(parse(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}").unwrap().is_some());
    }

    #[test]
    fn garbage_gets_the_standard_codes() {
        assert_eq!(code_of("{not json"), codes::PARSE_ERROR);
        assert_eq!(parse(b"\xff\xfe").unwrap_err().1.code, codes::PARSE_ERROR);
        assert_eq!(code_of("[1,2]"), codes::INVALID_REQUEST);
        assert_eq!(code_of("42"), codes::INVALID_REQUEST);
        assert_eq!(code_of(r#"{"id":1,"method":"m"}"#), codes::INVALID_REQUEST);
        assert_eq!(code_of(r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#), codes::INVALID_REQUEST);
        assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#), codes::INVALID_REQUEST);
        // Ids that JSON parsing would turn into floats are refused, never echoed altered.
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"m"}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#), codes::INVALID_REQUEST);
        let big = parse(br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"m"}"#).unwrap().unwrap();
        assert!(matches!(big, Incoming::Request { id, .. } if id == json!(u64::MAX)));
        assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1,"method":5}"#), codes::INVALID_REQUEST);
        // The id is echoed when it could be read.
        assert_eq!(parse(br#"{"jsonrpc":"1.0","id":9,"method":"m"}"#).unwrap_err().0, json!(9));
    }

    #[test]
    fn params_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            sandbox_id: String,
            path: String,
        }
        let e = params::<P>(json!({"sandboxId": "s", "path": 5})).unwrap_err();
        assert!(e.message.contains("`path`"), "{}", e.message);
        let e = params::<P>(json!({"sandboxId": "s"})).unwrap_err();
        assert!(e.message.contains("missing field `path`"), "{}", e.message);
        let e = params::<P>(json!({"sandboxId": "s", "path": "p", "pth": 1})).unwrap_err();
        assert!(e.message.contains("pth"), "{}", e.message);
        assert_eq!(params::<P>(json!([1])).unwrap_err().code, codes::INVALID_PARAMS);
    }
}

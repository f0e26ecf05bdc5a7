//! Core errors as JS errors. Async napi functions can only reject with a `Status` code, so the
//! stable core code travels as a `[CODE] ` message prefix that `index.js` turns into
//! `SandboxError.code`.

use dagger_sandbox::{Error, ErrorCode};

/// A core error as a napi error whose message starts with `[CODE] `.
pub fn to_napi(e: Error) -> napi::Error {
    coded(e.code(), e.to_string())
}

/// A core error raised by sandbox `id`; messages that do not name it yet (`INVALID_PATH`,
/// `INVALID_ARGUMENT`, ...) get a `sandbox <id>: ` prefix, so every message says where it failed.
pub fn in_sandbox(id: &str, e: Error) -> napi::Error {
    let msg = e.to_string();
    if msg.contains(id) {
        coded(e.code(), msg)
    } else {
        coded(e.code(), format!("sandbox {id}: {msg}"))
    }
}

/// A napi error carrying `code` the same way core errors do.
pub fn coded(code: ErrorCode, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("[{}] {message}", code.as_str()))
}

/// An `INVALID_ARGUMENT` error for a value the binding refuses before calling the core.
pub fn invalid_argument(message: impl std::fmt::Display) -> napi::Error {
    coded(ErrorCode::InvalidArgument, format!("invalid argument: {message}"))
}

//! SDK errors turned into the sandbox's error codes, with messages a person can act on. The SDK's
//! own `Display` is generic ("failed to query dagger engine"), so the cause is dug out here.

use dagger_sdk::core::graphql_client::GraphQLError;
use dagger_sdk::errors::DaggerError;

use crate::error::Error;

/// Longest engine message kept: a JSON parse failure embeds the whole response body.
const MAX_MESSAGE: usize = 2000;

/// A one-line account of an SDK error, with its causes.
pub(crate) fn describe(e: &DaggerError) -> String {
    let text = match e {
        DaggerError::Query(GraphQLError::DomainError { message, .. }) => message.clone(),
        DaggerError::Query(GraphQLError::HttpError(m)) if m.contains("recursion limit exceeded") => {
            "the query chain grew past the depth the SDK can parse (dagger/dagger#13397); \
             dagger-sandbox syncs long chains to prevent this, so please report it"
                .to_string()
        }
        DaggerError::Query(GraphQLError::HttpError(m)) => {
            format!("the Dagger session did not answer ({m}); the engine or its CLI may have stopped")
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        }
    };
    shorten(&text)
}

/// Cuts `text` to [`MAX_MESSAGE`] bytes on a character boundary.
pub(crate) fn shorten(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes more)", &text[..end], text.len() - end)
}

/// An SDK failure during `op` on sandbox `sandbox`: `ENGINE_ERROR`, with the engine's words.
pub(crate) fn query_error(sandbox: &str, op: &str, e: &DaggerError) -> Error {
    Error::engine(sandbox, op, describe(e))
}

/// An engine call that did not answer within its deadline; it was abandoned (and so cancelled).
pub(crate) fn deadline_error(sandbox: &str, op: &str, deadline: std::time::Duration) -> Error {
    Error::engine(
        sandbox,
        op,
        format!(
            "the Dagger engine did not answer within {} ms (the sandbox's timeoutMs bounds every engine call); the \
             call was cancelled. The engine may be stalled or still pulling an image",
            deadline.as_millis()
        ),
    )
}

/// A task running SDK calls that did not finish: the SDK panicked (it unwraps in a few places).
pub(crate) fn join_error(sandbox: &str, op: &str, e: tokio::task::JoinError) -> Error {
    if e.is_cancelled() {
        return Error::Cancelled { sandbox: sandbox.to_string(), op: op.to_string() };
    }
    Error::engine(sandbox, op, format!("the Dagger SDK failed unexpectedly: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn transport_failures_say_the_session_is_gone() {
        let e = DaggerError::Query(GraphQLError::HttpError(
            "error sending request for url (http://127.0.0.1:1/query)".into(),
        ));
        let err = query_error("sbx-1", "reading a file", &e);
        assert_eq!(err.code(), ErrorCode::EngineError);
        let text = err.to_string();
        assert!(text.contains("sbx-1") && text.contains("reading a file") && text.contains("did not answer"), "{text}");
    }

    #[test]
    fn depth_failures_are_named_and_huge_bodies_are_cut() {
        let body = "x".repeat(100_000);
        let e = DaggerError::Query(GraphQLError::HttpError(format!(
            "Failed to parse response: Error(\"recursion limit exceeded\"). The response body is: {body}"
        )));
        let text = describe(&e);
        assert!(text.contains("dagger/dagger#13397") && text.len() < 400, "{text}");
        let e = DaggerError::Query(GraphQLError::DomainError { message: "é".repeat(5000), fields: vec![] });
        let text = describe(&e);
        assert!(text.len() < MAX_MESSAGE + 40 && text.ends_with("bytes more)"), "{}", text.len());
    }

    #[test]
    fn engine_messages_are_kept_word_for_word() {
        let e = DaggerError::Query(GraphQLError::DomainError {
            message: "failed to resolve source metadata for docker.io/library/nope:1: not found".into(),
            fields: vec![],
        });
        let text = query_error("sbx-2", "pulling the image", &e).to_string();
        assert!(text.contains("docker.io/library/nope:1: not found"), "{text}");
    }
}

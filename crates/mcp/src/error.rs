//! Why a tool call failed, as an `isError: true` result carrying the stable error code, so an
//! agent can branch on `NOT_FOUND` or `TIMEOUT` instead of parsing prose.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::json;

/// A failed tool call: the stable code (`NOT_FOUND`, `INVALID_ARGUMENT`, `PATH_OUTSIDE_ROOTS`, the
/// core's codes...) and a message that says what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// The stable code.
    pub code: String,
    /// What went wrong, for the agent.
    pub message: String,
}

/// The code of a host path outside every root the server may touch.
pub const PATH_OUTSIDE_ROOTS: &str = "PATH_OUTSIDE_ROOTS";

impl ToolError {
    /// An error with `code`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ToolError { code: code.into(), message: message.into() }
    }

    /// `INVALID_ARGUMENT`: the call's arguments cannot be used.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_ARGUMENT", message)
    }

    /// `NOT_FOUND` for a sandbox id this connection cannot reach.
    pub fn no_sandbox(id: &str) -> Self {
        Self::new("NOT_FOUND", format!("no sandbox {id:?} on this connection; sandbox_list shows the ones you can use"))
    }

    /// The result an MCP client sees: `isError: true`, the code and message as structured content
    /// (`{"error": {"code", "message"}}`) and as text.
    pub fn to_result(&self) -> CallToolResult {
        let mut r = CallToolResult::structured_error(json!({"error": {"code": self.code, "message": self.message}}));
        r.content = vec![ContentBlock::text(format!("error {}: {}", self.code, self.message))];
        r
    }
}

impl From<dagger_sandbox::Error> for ToolError {
    fn from(e: dagger_sandbox::Error) -> Self {
        ToolError::new(e.code().as_str(), e.to_string())
    }
}

impl From<dagger_sandbox_validate::ValidateError> for ToolError {
    fn from(e: dagger_sandbox_validate::ValidateError) -> Self {
        ToolError::new(e.code().as_str(), e.to_string())
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(self.to_result().into())
    }
}

/// A successful result: `value` as structured content (it matches the tool's `outputSchema`) and
/// `text` as the human-readable content.
pub struct Out<T> {
    /// The structured result.
    pub value: T,
    /// The summary a person (or a model without structured output) reads.
    pub text: String,
}

impl<T: serde::Serialize> IntoCallToolResult for Out<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        let value = serde_json::to_value(&self.value)
            .map_err(|e| rmcp::ErrorData::internal_error(format!("serializing the result: {e}"), None))?;
        let mut r = CallToolResult::structured(value);
        r.content = vec![ContentBlock::text(self.text)];
        Ok(r.into())
    }
}

/// What every tool returns.
pub type ToolResult<T> = Result<Out<T>, ToolError>;

//! The tools, grouped by what they touch; each group is a router and `router()` joins them.

mod exec;
mod files;
mod project;
mod sandbox;

use std::collections::BTreeMap;

use rmcp::handler::server::router::tool::ToolRouter;
use schemars::JsonSchema;
use serde::Serialize;

use crate::server::McpServer;

pub use sandbox::SandboxView;

/// Every tool of the server.
pub(crate) fn router() -> ToolRouter<McpServer> {
    McpServer::sandbox_router() + McpServer::exec_router() + McpServer::files_router() + McpServer::project_router()
}

/// Checks environment variable names, so a bad one is a clear error before anything runs.
pub(crate) fn check_env(env: &BTreeMap<String, String>) -> Result<(), crate::ToolError> {
    for k in env.keys() {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(crate::ToolError::invalid(format!(
                "environment variable name {k:?} must match [A-Za-z_][A-Za-z0-9_]*"
            )));
        }
    }
    Ok(())
}

/// An empty object, the output of tools that have nothing to add.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_checked() {
        let ok: BTreeMap<String, String> = [("A_1".to_string(), "x".to_string())].into();
        assert!(check_env(&ok).is_ok());
        for bad in ["", "1A", "A-B", "A B", "É"] {
            let env: BTreeMap<String, String> = [(bad.to_string(), String::new())].into();
            assert_eq!(check_env(&env).unwrap_err().code, "INVALID_ARGUMENT", "{bad:?}");
        }
    }

    #[test]
    fn every_tool_of_the_issue_has_input_and_output_schemas() {
        let tools = router().list_all();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "file_delete",
                "file_edit",
                "file_list",
                "file_read",
                "file_write",
                "sandbox_close",
                "sandbox_create",
                "sandbox_exec",
                "sandbox_export",
                "sandbox_fork",
                "sandbox_import",
                "sandbox_list",
                "service_logs",
                "validate_project"
            ]
        );
        for t in &tools {
            assert!(t.output_schema.is_some(), "{} has no outputSchema", t.name);
            assert_eq!(t.input_schema.get("type").and_then(|v| v.as_str()), Some("object"), "{}", t.name);
        }
    }
}

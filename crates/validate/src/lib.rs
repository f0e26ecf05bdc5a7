//! The main job of dagger-sandbox as a library: copy a host project into a fresh sandbox (without
//! `node_modules` and `.git`), run its install and test steps, and give a verdict with each step's
//! exit code, duration and output tail. The CLI's `validate`, the MCP server and the bindings all
//! call this one implementation, so the verdict means the same everywhere.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dagger_sandbox_validate::ValidateError> {
//! use dagger_sandbox::SandboxConfig;
//! use dagger_sandbox_validate::{validate, Plan, ValidateOptions};
//!
//! let plan = Plan::for_project("./my-app", None, None)?; // npm ci (or npm install), npm test
//! let report = validate(SandboxConfig::new().image("node:22"), &plan, ValidateOptions::default()).await?;
//! println!("passed: {}", report.passed);
//! # Ok(()) }
//! ```

mod error;
pub mod modules;
mod plan;
mod report;
mod run;

pub use error::ValidateError;
pub use plan::{Plan, Step, EXCLUDE, NPM_CI, NPM_INSTALL};
pub use report::{tail, Report, StepReport, TAIL_CHARS, TAIL_LINES};
pub use run::{validate, Progress, ValidateOptions};

//! Why a validation could not give a verdict (a failing step is a verdict, not an error).

use dagger_sandbox::ErrorCode;

/// A validation that ended without a verdict; `code()` is the stable error code.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The project or the steps asked for cannot be run (missing directory, nothing to run).
    #[error("{0}")]
    InvalidProject(String),
    /// The project has no `package.json` and no install or test command was given.
    #[error("nothing to run: {} has no package.json; give an install and/or a test command", .0.display())]
    NothingToRun(std::path::PathBuf),
    /// The sandbox failed at one stage (creating it, copying the project in, running a step).
    #[error("{stage}: {source}")]
    Sandbox {
        /// What was being done, e.g. `copying /src/app into /workspace`.
        stage: String,
        /// The sandbox's error, with its own code.
        #[source]
        source: dagger_sandbox::Error,
    },
    /// The caller cancelled the validation; the sandbox was removed.
    #[error("cancelled; the sandbox was removed")]
    Cancelled,
}

impl ValidateError {
    /// The stable code: `INVALID_ARGUMENT`, `CANCELLED`, or the sandbox error's own.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidateError::InvalidProject(_) | ValidateError::NothingToRun(_) => ErrorCode::InvalidArgument,
            ValidateError::Sandbox { source, .. } => source.code(),
            ValidateError::Cancelled => ErrorCode::Cancelled,
        }
    }

    pub(crate) fn at(stage: impl Into<String>) -> impl FnOnce(dagger_sandbox::Error) -> ValidateError {
        let stage = stage.into();
        move |source| ValidateError::Sandbox { stage, source }
    }
}

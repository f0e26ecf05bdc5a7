//! The verdict, in the shape `validate --json` prints and the MCP tool returns.

use serde::Serialize;

/// Lines of each stream kept in a step's tails.
pub const TAIL_LINES: usize = 40;
/// Characters of each stream kept in a step's tails.
pub const TAIL_CHARS: usize = 4000;

/// One step's outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// `install` or `test`.
    pub name: String,
    /// The shell command.
    pub command: String,
    /// Its exit code; -1 when it timed out.
    pub exit_code: i64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Whether it ran past the step timeout (and was killed).
    pub timed_out: bool,
    /// The last [`TAIL_LINES`] lines / [`TAIL_CHARS`] characters of its stdout.
    pub stdout_tail: String,
    /// The same of its stderr.
    pub stderr_tail: String,
}

impl StepReport {
    /// Whether the step passed: exit 0 within its time.
    pub fn passed(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// The whole verdict: steps run in order up to the first that failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every planned step ran and passed.
    pub passed: bool,
    /// The backend the sandbox ran on.
    pub backend: String,
    /// `container` or `process`.
    pub isolation: String,
    /// The image, when the backend uses one.
    pub image: Option<String>,
    /// Why `auto` fell back to a weaker backend, if it did.
    pub fallback_reason: Option<String>,
    /// The steps that ran.
    pub steps: Vec<StepReport>,
    /// The `node_modules` store: `hit` (the installed tree was restored), `miss`, or `off`.
    pub node_modules_cache: String,
    /// What went wrong without changing the verdict: a cache that could not be used, an install
    /// retried without the caches.
    pub warnings: Vec<String>,
}

impl Report {
    /// The first step that failed, if any.
    pub fn failed_step(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| !s.passed())
    }
}

/// The end of `text`: at most `max_lines` lines, then at most `max_chars` characters.
pub fn tail(text: &str, max_lines: usize, max_chars: usize) -> String {
    let trimmed = text.trim_end();
    let lines: Vec<&str> = trimmed.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let joined = lines[start..].join("\n");
    let count = joined.chars().count();
    if count <= max_chars {
        joined
    } else {
        joined.chars().skip(count - max_chars).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end_in_lines_and_characters() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("héllo wörld", 5, 4), "örld");
        assert_eq!(tail("", 5, 5), "");
    }
}

package daggersandbox

// types.go: the values calls return (results, entries, output chunks) and the options of Exec.

import (
	"encoding/base64"
	"time"
)

// ExecResult is what a finished command left: its output and exit code. A non-zero exit is a
// result, not an error.
type ExecResult struct {
	// Stdout is what the command wrote to stdout (capped by the sandbox's outputCapBytes).
	Stdout string
	// Stderr is what the command wrote to stderr (capped likewise).
	Stderr string
	// ExitCode is the command's exit status; -1 when it was killed.
	ExitCode int
	// Duration is how long the command ran.
	Duration time.Duration
	// Truncated is true when the middle of stdout or stderr was dropped to respect the cap.
	Truncated bool
	// StdoutDropped counts the stdout bytes dropped by the cap.
	StdoutDropped int64
	// StderrDropped counts the stderr bytes dropped by the cap.
	StderrDropped int64
	// ExecID names the command in exec/output notifications ("exec-1", ...).
	ExecID string
}

// wireResult is an exec result as the protocol spells it.
type wireResult struct {
	ExitCode      int    `json:"exitCode"`
	Stdout        string `json:"stdout"`
	Stderr        string `json:"stderr"`
	DurationMs    int64  `json:"durationMs"`
	Truncated     bool   `json:"truncated"`
	StdoutDropped int64  `json:"stdoutDropped"`
	StderrDropped int64  `json:"stderrDropped"`
	ExecID        string `json:"execId"`
}

func (w *wireResult) toResult() *ExecResult {
	return &ExecResult{
		Stdout: w.Stdout, Stderr: w.Stderr, ExitCode: w.ExitCode,
		Duration:  time.Duration(w.DurationMs) * time.Millisecond,
		Truncated: w.Truncated, StdoutDropped: w.StdoutDropped, StderrDropped: w.StderrDropped,
		ExecID: w.ExecID,
	}
}

// DirEntry is one entry of ListDirectory.
type DirEntry struct {
	// Name is the entry's name, not its path.
	Name string `json:"name"`
	// IsDir is true for directories.
	IsDir bool `json:"-"`
	// Kind is "file", "dir", "symlink" or "other".
	Kind string `json:"kind"`
	// Size is the size in bytes (0 for directories).
	Size int64 `json:"size"`
}

// OutputChunk is a piece of a running command's output, delivered to an OnOutput callback.
type OutputChunk struct {
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	// Data is UTF-8 text; a character split between two writes arrives whole in the later chunk.
	Data string `json:"data"`
	// ExecID names the command.
	ExecID string `json:"execId"`
}

// BackendInfo is what the bridge found out about one backend when it started.
type BackendInfo struct {
	// Name is "dagger", "docker" or "local".
	Name string `json:"name"`
	// Available is true if sandboxes can be made on it.
	Available bool `json:"available"`
	// Isolation is "container" or "process".
	Isolation string `json:"isolation"`
	// Detail says what was found or what is missing.
	Detail string `json:"detail"`
}

// SandboxInfo describes a sandbox as the bridge made it.
type SandboxInfo struct {
	// ID is the bridge's id of the sandbox ("sbx-...").
	ID string `json:"sandboxId"`
	// Backend is the backend it runs on ("docker", "dagger", "local").
	Backend string `json:"backend"`
	// Isolation is "container" or "process".
	Isolation string `json:"isolation"`
	// Workdir is the working directory at creation.
	Workdir string `json:"workdir"`
	// Image is the image it started from ("" on the local backend).
	Image string `json:"image"`
	// FallbackReason is set when Backend "auto" fell back to "local".
	FallbackReason string `json:"fallbackReason"`
}

// ExecOption changes one Exec call.
type ExecOption func(*execSettings)

type execSettings struct {
	env      map[string]string
	cwd      string
	timeout  time.Duration
	stdin    *string
	stdinB64 bool
	onOutput func(OutputChunk)
}

// Env adds variables to this command only, over the sandbox's (WithEnv) variables.
func Env(env map[string]string) ExecOption {
	return func(s *execSettings) {
		if s.env == nil {
			s.env = map[string]string{}
		}
		for k, v := range env {
			s.env[k] = v
		}
	}
}

// Cwd runs the command in dir (relative to the workdir, or absolute).
func Cwd(dir string) ExecOption { return func(s *execSettings) { s.cwd = dir } }

// Timeout bounds this command instead of the sandbox's ExecuteTimeout; on expiry the command is
// killed and the call fails with ErrTimeout (which also matches context.DeadlineExceeded).
func Timeout(d time.Duration) ExecOption { return func(s *execSettings) { s.timeout = d } }

// Stdin feeds text to the command's standard input.
func Stdin(text string) ExecOption {
	return func(s *execSettings) { s.stdin, s.stdinB64 = &text, false }
}

// StdinBytes feeds bytes (sent as base64) to the command's standard input.
func StdinBytes(data []byte) ExecOption {
	enc := base64.StdEncoding.EncodeToString(data)
	return func(s *execSettings) { s.stdin, s.stdinB64 = &enc, true }
}

// OnOutput streams the command's output: fn gets each chunk in order, on a goroutine of its own,
// and every call to fn has returned before Exec does. While fn is slow, the bridge (and the
// command) wait for it rather than piling output up in memory.
func OnOutput(fn func(OutputChunk)) ExecOption { return func(s *execSettings) { s.onOutput = fn } }

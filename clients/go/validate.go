package daggersandbox

// validate.go: the main job in one call (the bridge's project/validate): a fresh sandbox, the
// project copied in without node_modules and .git, install and test, the verdict, the sandbox gone.

import (
	"context"
	"path/filepath"
	"time"
)

// ValidateOptions says which steps ValidateProject runs; the zero value runs npm install and npm
// test when the project has a package.json.
type ValidateOptions struct {
	// Install is the install step; nil means npm install (with a package.json), "" skips it.
	Install *string
	// Test is the test step; nil means npm test (with a package.json), "" skips it.
	Test *string
	// StepTimeout bounds each step (default 10 minutes); a step past it is reported TimedOut.
	StepTimeout time.Duration
}

// StepReport is one step's outcome.
type StepReport struct {
	Name       string `json:"name"`
	Command    string `json:"command"`
	ExitCode   int    `json:"exitCode"`
	DurationMs int64  `json:"durationMs"`
	TimedOut   bool   `json:"timedOut"`
	// StdoutTail and StderrTail are the last 40 lines / 4000 characters of each stream.
	StdoutTail string `json:"stdoutTail"`
	StderrTail string `json:"stderrTail"`
}

// ValidateReport is the verdict: the steps that ran, in order, up to the first that failed.
type ValidateReport struct {
	Passed         bool         `json:"passed"`
	Backend        string       `json:"backend"`
	Isolation      string       `json:"isolation"`
	Image          *string      `json:"image"`
	FallbackReason *string      `json:"fallbackReason"`
	Steps          []StepReport `json:"steps"`
	// NodeModulesCache is the node_modules store's outcome: "hit", "miss" or "off".
	NodeModulesCache string `json:"nodeModulesCache"`
	// Warnings are what went wrong without changing the verdict (a cache that could not be used).
	Warnings []string `json:"warnings"`
}

// ValidateProject runs the main job on the project directory projectDir (relative to
// cfg.BaseDir when relative) in a sandbox made from cfg, removed at the end. A failing or
// timed-out step is a report with Passed false, not an error; a project that cannot be run is
// ErrInvalidArgument, and cancelling ctx stops the step and removes the sandbox.
func ValidateProject(ctx context.Context, cfg Config, projectDir string, opts ValidateOptions) (*ValidateReport, error) {
	c := cfg.Client
	if c == nil {
		path, err := FindBridge(cfg.BridgePath)
		if err != nil {
			return nil, err
		}
		if c, err = acquireShared(ctx, path); err != nil {
			return nil, err
		}
		defer c.release()
	}
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.Backend == "" {
		cfg.Backend = "auto"
	}
	config, err := cfg.configParams("project/validate")
	if err != nil {
		return nil, err
	}
	if cfg.ExecuteTimeout > 0 {
		config["timeoutMs"] = cfg.ExecuteTimeout * 1000
	}
	dir := projectDir
	if cfg.BaseDir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(cfg.BaseDir, dir)
	}
	params := map[string]any{"projectDir": absolute(dir), "config": config}
	if opts.Install != nil {
		params["install"] = *opts.Install
	}
	if opts.Test != nil {
		params["test"] = *opts.Test
	}
	if opts.StepTimeout > 0 {
		params["stepTimeoutMs"] = opts.StepTimeout.Milliseconds()
	}
	var report ValidateReport
	if err := c.call(ctx, "project/validate", params, &report); err != nil {
		return nil, err
	}
	return &report, nil
}

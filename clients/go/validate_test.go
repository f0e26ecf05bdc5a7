package daggersandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestValidateProjectGivesAVerdictAndTypedErrors(t *testing.T) {
	c := realClient(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "check.sh"), []byte("echo checked; test ! -e node_modules\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "node_modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Client: c, Backend: "docker", Image: busybox}
	install, test := "echo installed", "sh check.sh"
	r, err := ValidateProject(testCtx(t), cfg, dir, ValidateOptions{Install: &install, Test: &test})
	if err != nil {
		t.Fatalf("ValidateProject: %v", err)
	}
	if !r.Passed || len(r.Steps) != 2 || r.Steps[1].StdoutTail != "checked" || r.Backend != "docker" {
		t.Fatalf("a passing project (node_modules left out): %+v", r)
	}
	// A failing test is a verdict with the step's exit code and output, not an error.
	failing, none := "echo 'expected 2' >&2; exit 1", ""
	r, err = ValidateProject(testCtx(t), cfg, dir, ValidateOptions{Install: &none, Test: &failing})
	if err != nil {
		t.Fatalf("ValidateProject: %v", err)
	}
	if r.Passed || len(r.Steps) != 1 || r.Steps[0].ExitCode != 1 || r.Steps[0].StderrTail != "expected 2" {
		t.Fatalf("a failing project: %+v", r)
	}
	// Nothing to run (no package.json, no commands) and a missing directory are typed errors.
	if _, err := ValidateProject(testCtx(t), cfg, dir, ValidateOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nothing to run: %v", err)
	}
	if _, err := ValidateProject(testCtx(t), cfg, filepath.Join(dir, "missing"), ValidateOptions{Test: &test}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a missing directory: %v", err)
	}
}

package daggersandbox

// locate.go: where the bridge binary is looked for when no path is given.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BridgeBinary is the file name of the bridge executable.
const BridgeBinary = "dagger-sandbox-bridge"

// BridgeEnv is the environment variable that names the bridge binary.
const BridgeEnv = "DAGGER_SANDBOX_BRIDGE"

// FindBridge returns the bridge binary to run: explicit if not empty, else $DAGGER_SANDBOX_BRIDGE,
// else dagger-sandbox-bridge next to the running executable, else on PATH. A path that was named
// (explicitly or by the variable) but is not an executable file is an error, never skipped.
func FindBridge(explicit string) (string, error) {
	named, source := explicit, "Config.BridgePath"
	if named == "" {
		named, source = os.Getenv(BridgeEnv), "$"+BridgeEnv
	}
	if named != "" {
		if err := checkExecutable(named); err != nil {
			return "", newError(CodeBridgeNotFound, "", err,
				"%s names %q, which cannot be run: %v; build the bridge with `cargo build -p dagger-sandbox-bridge` "+
					"and point %s at target/debug/%s", source, named, err, source, BridgeBinary)
		}
		return absolute(named), nil
	}
	var tried []string
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), BridgeBinary)
		if checkExecutable(beside) == nil {
			return beside, nil
		}
		tried = append(tried, beside)
	}
	if onPath, err := exec.LookPath(BridgeBinary); err == nil {
		return absolute(onPath), nil
	}
	tried = append(tried, BridgeBinary+" on PATH")
	return "", newError(CodeBridgeNotFound, "", nil,
		"%s not found (tried: $%s unset, %s); build it with `cargo build -p dagger-sandbox-bridge`, then set "+
			"%s to target/debug/%s, put it on PATH, or set Config.BridgePath",
		BridgeBinary, BridgeEnv, strings.Join(tried, ", "), BridgeEnv, BridgeBinary)
}

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("it is a directory")
	}
	if st.Mode().Perm()&0o111 == 0 {
		return errors.New("it is not executable")
	}
	return nil
}

func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// errString quotes at most n bytes of b for an error message.
func errString(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}

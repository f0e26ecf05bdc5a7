package daggersandbox

// main_test.go: finding the real bridge and Docker for the tests, and a sandbox helper.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	busybox   = "dagger-sandbox-test/busybox:latest"
	nodeImage = "dagger-sandbox-test/node:latest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeModeEnv); mode != "" {
		runFakeBridge(mode)
		os.Exit(0)
	}
	if os.Getenv(userProgramEnv) != "" {
		runUserProgram()
	}
	if os.Getenv(BridgeEnv) == "" {
		target := os.Getenv("CARGO_TARGET_DIR")
		if target == "" {
			target = filepath.Join("..", "..", "target")
		} else if !filepath.IsAbs(target) {
			target = filepath.Join("..", "..", target)
		}
		os.Setenv(BridgeEnv, absolute(filepath.Join(target, "debug", BridgeBinary)))
	}
	code := m.Run()
	if shared.client != nil {
		_ = shared.client.Close()
	}
	os.Exit(code)
}

// shared is the real bridge most tests use, started on first use.
var shared struct {
	once   sync.Once
	client *Client
	err    error
	skip   string
}

// realClient returns the shared real bridge, skipping the test (or failing it when
// DAGGER_SANDBOX_REQUIRE_DOCKER=1) if it or Docker is missing.
func realClient(t *testing.T) *Client {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.client, shared.err = NewClient(ctx, ClientOptions{})
		if shared.err != nil {
			return
		}
		for _, b := range shared.client.Backends() {
			if b.Name == "docker" && !b.Available {
				shared.skip = "Docker is not available to the bridge: " + b.Detail
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("the real bridge did not start (build it with `cargo build -p dagger-sandbox-bridge`): %v", shared.err)
	}
	requireDocker(t, shared.skip)
	return shared.client
}

// requireDocker skips with a visible reason, or fails when Docker is required.
func requireDocker(t *testing.T, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if os.Getenv("DAGGER_SANDBOX_REQUIRE_DOCKER") == "1" {
		t.Fatalf("DAGGER_SANDBOX_REQUIRE_DOCKER=1 but %s", reason)
	}
	fmt.Fprintf(os.Stderr, "SKIPPED %s: %s\n", t.Name(), reason)
	t.Skip(reason)
}

// newBox makes a busybox sandbox on Docker, closed when the test ends.
func newBox(t *testing.T, cfg Config) *DaggerSandbox {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = realClient(t)
	}
	if cfg.Image == "" {
		cfg.Image = busybox
	}
	if cfg.Backend == "" {
		cfg.Backend = "docker"
	}
	sb, err := NewDaggerSandbox(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("NewDaggerSandbox: %v", err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// testCtx is a context that ends with the test, bounded so that no test can hang.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// containersOf lists the Docker containers (any state) of a sandbox id.
func containersOf(t *testing.T, id string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=dev.dagger-sandbox.sandbox="+id).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// fakeClient starts the test binary as a hostile bridge in mode.
func fakeClient(ctx context.Context, mode string, opts ClientOptions) (*Client, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	opts.BridgePath = self
	opts.Env = append(opts.Env, fakeModeEnv+"="+mode)
	return NewClient(ctx, opts)
}

// fakeBox starts a hostile bridge in mode and a sandbox handle on it (the fake made nothing: the
// handle only addresses calls to it); the client is closed when the test ends.
func fakeBox(t *testing.T, mode string, opts ClientOptions) (*Client, *DaggerSandbox) {
	t.Helper()
	c, err := fakeClient(testCtx(t), mode, opts)
	if err != nil {
		t.Fatalf("the fake bridge (%s) did not start: %v", mode, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, c.adopt(SandboxInfo{ID: "sbx-fake"}, "", time.Minute, nil)
}

package daggersandbox

// durable_test.go: Stop and Resume, and Connect by id, through the real bridge and daemon.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestStoppedSandboxFailsWithErrStoppedAndResumesWithItsFiles(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	if err := sb.WriteFile(ctx, "kept.txt", "kept"); err != nil {
		t.Fatal(err)
	}
	if err := sb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Exec(ctx, "true"); !errors.Is(err, ErrStopped) {
		t.Fatalf("exec on a stopped sandbox: %v, want ErrStopped", err)
	}
	if err := sb.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := sb.Exec(ctx, "cat kept.txt")
	if err != nil || r.Stdout != "kept" {
		t.Fatalf("after resume: %+v %v", r, err)
	}
}

func TestAPersistentSandboxIsReachedByIDAndDeleted(t *testing.T) {
	realClient(t) // skips without Docker
	ctx := testCtx(t)
	bin := filepath.Join(filepath.Dir(os.Getenv(BridgeEnv)), "dagger-sandbox")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s is missing (cargo build -p dagger-sandbox-cli): %v", bin, err)
	}
	state := filepath.Join(t.TempDir(), "state")
	// The bridge (started before this test) finds the daemon through the env it was given, so
	// this test uses a bridge of its own with the state dir and the CLI named.
	own, err := NewClient(ctx, ClientOptions{Env: []string{"DAGGER_SANDBOX_BIN=" + bin, "DAGGER_SANDBOX_STATE_DIR=" + state}})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	defer stopDaemon(state)
	sb, err := own.NewSandbox(ctx, Config{Image: busybox, Backend: "docker", Persistent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(ctx, "note.txt", "persisted"); err != nil {
		t.Fatal(err)
	}
	id := sb.ID()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if len(containersOf(t, id)) != 1 {
		t.Fatalf("closing a persistent handle must keep the sandbox")
	}
	back, err := own.Connect(ctx, id, ConnectOptions{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := back.Exec(ctx, "cat note.txt"); err != nil || r.Stdout != "persisted" {
		t.Fatalf("connected exec: %+v %v", r, err)
	}
	if err := back.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if left := containersOf(t, id); len(left) != 0 {
		t.Fatalf("delete left %v", left)
	}
	if _, err := own.Connect(ctx, "sbx-000000000000", ConnectOptions{StateDir: state}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("connect to an unknown id: %v, want ErrNotFound", err)
	}
}

// stopDaemon stops the daemon a test's state dir started (by the pid it recorded).
func stopDaemon(state string) {
	b, err := os.ReadFile(filepath.Join(state, "daemon.json"))
	if err != nil {
		return
	}
	s := string(b)
	i := strings.Index(s, `"pid":`)
	if i < 0 {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(strings.SplitN(s[i+6:], ",", 2)[0], "}", 2)[0]))
	if err != nil || pid <= 0 {
		return
	}
	// The syscall, by pid: never a shelled-out kill, which could misread a negative id.
	_ = syscall.Kill(pid, syscall.SIGTERM)
}

package daggersandbox

// bridge_failures_test.go: a bridge that is missing, will not start, dies, babbles or goes quiet
// gives a typed error naming what happened, never a hang.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *Error, got %T: %v", err, err)
	}
	return e
}

func TestBridgeNotFound(t *testing.T) {
	ctx := testCtx(t)
	_, err := NewDaggerSandbox(ctx, Config{BridgePath: "/nonexistent/dagger-sandbox-bridge"})
	if !errors.Is(err, ErrBridgeNotFound) {
		t.Fatalf("want ErrBridgeNotFound, got %v", err)
	}
	if !strings.Contains(err.Error(), "/nonexistent/dagger-sandbox-bridge") || !strings.Contains(err.Error(), "cargo build") {
		t.Errorf("the error should name the path and how to build the bridge: %v", err)
	}

	t.Setenv(BridgeEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err = FindBridge("")
	if !errors.Is(err, ErrBridgeNotFound) || !strings.Contains(err.Error(), "on PATH") {
		t.Fatalf("with nothing anywhere, want ErrBridgeNotFound naming what was tried, got %v", err)
	}

	dir := t.TempDir()
	t.Setenv(BridgeEnv, dir)
	if _, err = FindBridge(""); !errors.Is(err, ErrBridgeNotFound) || !strings.Contains(err.Error(), "$"+BridgeEnv) {
		t.Fatalf("a directory named by $%s: want ErrBridgeNotFound naming the variable, got %v", BridgeEnv, err)
	}
	plain := filepath.Join(dir, "bridge")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = FindBridge(plain); !errors.Is(err, ErrBridgeNotFound) || !strings.Contains(err.Error(), "not executable") {
		t.Fatalf("a file without x bits: want ErrBridgeNotFound saying so, got %v", err)
	}
}

func TestBridgeFoundOnPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, BridgeBinary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BridgeEnv, "")
	t.Setenv("PATH", dir)
	got, err := FindBridge("")
	if err != nil || got != bin {
		t.Fatalf("FindBridge = %q, %v; want %q", got, err, bin)
	}
}

func TestBridgeCannotStart(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "not-a-program")
	if err := os.WriteFile(bin, []byte{0x7f, 'E', 'L', 'F', 0, 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := NewClient(testCtx(t), ClientOptions{BridgePath: bin})
	if !errors.Is(err, ErrBridgeStart) {
		t.Fatalf("want ErrBridgeStart, got %v", err)
	}
	if !errors.Is(err, syscall.ENOEXEC) {
		t.Errorf("the OS error should be kept: %v", err)
	}
}

func TestBridgeExitsAtStart(t *testing.T) {
	_, err := fakeClient(testCtx(t), "exit-at-start", ClientOptions{})
	if !errors.Is(err, ErrBridgeExited) {
		t.Fatalf("want ErrBridgeExited, got %v", err)
	}
	e := asError(t, err)
	if e.ExitStatus == nil || *e.ExitStatus != 3 {
		t.Errorf("ExitStatus = %v, want 3", e.ExitStatus)
	}
	if !strings.Contains(e.StderrTail, "no engine configured") || !strings.Contains(err.Error(), "no engine configured") {
		t.Errorf("the bridge's stderr tail should be in the error: %q", err)
	}
}

func TestBridgeNeverAnswersInitialize(t *testing.T) {
	start := time.Now()
	_, err := fakeClient(testCtx(t), "no-init", ClientOptions{StartTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrBridgeStart) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrBridgeStart wrapping DeadlineExceeded, got %v", err)
	}
	if !strings.Contains(err.Error(), "did not answer initialize") {
		t.Errorf("the error should say what did not happen: %v", err)
	}
	t.Logf("gave up after %s", time.Since(start))
}

func TestBridgeGarbageAtInitialize(t *testing.T) {
	_, err := fakeClient(testCtx(t), "garbage-at-init", ClientOptions{})
	if !errors.Is(err, ErrBridgeProtocol) {
		t.Fatalf("want ErrBridgeProtocol, got %v", err)
	}
	if !strings.Contains(err.Error(), "hello, I am not JSON-RPC") {
		t.Errorf("the error should quote the garbage: %v", err)
	}
}

func TestBridgeSpeaksAnotherProtocolVersion(t *testing.T) {
	_, err := fakeClient(testCtx(t), "old-protocol", ClientOptions{})
	if !errors.Is(err, ErrBridgeProtocol) || !strings.Contains(err.Error(), `"0"`) {
		t.Fatalf("want ErrBridgeProtocol naming the version, got %v", err)
	}
}

func TestBridgeDiesMidCall(t *testing.T) {
	ctx := testCtx(t)
	c, sb := fakeBox(t, "die-mid-call", ClientOptions{})
	var mu sync.Mutex
	var got []string
	_, err := sb.Exec(ctx, "sleep 60", OnOutput(func(o OutputChunk) {
		mu.Lock()
		got = append(got, o.Data)
		mu.Unlock()
	}))
	if !errors.Is(err, ErrBridgeExited) {
		t.Fatalf("want ErrBridgeExited, got %v", err)
	}
	e := asError(t, err)
	if e.Method != "sandbox/exec" || e.ExitStatus == nil || *e.ExitStatus != 7 || !strings.Contains(e.StderrTail, "simulated crash") {
		t.Errorf("want method, status 7 and the stderr tail; got %+v", e)
	}
	if len(got) != 1 || got[0] != "partial\n" {
		t.Errorf("output streamed before the crash should have been delivered: %q", got)
	}
	// Later calls fail at once with the same story.
	if _, err := sb.ReadFile(ctx, "a"); !errors.Is(err, ErrBridgeExited) || !strings.Contains(err.Error(), "status 7") {
		t.Errorf("a call after the crash: want ErrBridgeExited, got %v", err)
	}
	if !errors.Is(c.Err(), ErrBridgeExited) {
		t.Errorf("Client.Err() = %v", c.Err())
	}
}

func TestBridgeGarbageMidCall(t *testing.T) {
	ctx := testCtx(t)
	c, sb := fakeBox(t, "garbage-mid-call", ClientOptions{})
	_, err := sb.ReadFile(ctx, "a.txt")
	if !errors.Is(err, ErrBridgeProtocol) || !strings.Contains(err.Error(), `\"result\":`) {
		t.Fatalf("want ErrBridgeProtocol quoting the line, got %v", err)
	}
	if err := syscall.Kill(c.Pid(), 0); err == nil {
		t.Errorf("a bridge that broke the protocol should have been stopped (pid %d lives)", c.Pid())
	}
}

func TestBridgeAnswersWithTheWrongShape(t *testing.T) {
	ctx := testCtx(t)
	c, err := fakeClient(ctx, "bad-shape", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.NewSandbox(ctx, Config{})
	if !errors.Is(err, ErrBridgeProtocol) || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("want ErrBridgeProtocol quoting the result, got %v", err)
	}
}

func TestBridgeWritesAnEndlessLine(t *testing.T) {
	ctx := testCtx(t)
	_, sb := fakeBox(t, "huge-line", ClientOptions{MaxLineBytes: 64 << 10})
	if _, err := sb.ReadFile(ctx, "a"); !errors.Is(err, ErrBridgeProtocol) || !strings.Contains(err.Error(), "longer than 65536") {
		t.Fatalf("want ErrBridgeProtocol about the line length, got %v", err)
	}
}

func TestCancelledCallOnASilentBridge(t *testing.T) {
	_, sb := fakeBox(t, "silent", ClientOptions{CancelGrace: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := sb.Exec(ctx, "sleep 60", OnOutput(func(OutputChunk) {}))
	if !errors.Is(err, ErrBridgeUnresponsive) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrBridgeUnresponsive wrapping DeadlineExceeded, got %v", err)
	}
	// The client is still usable for calls that the bridge does answer: here, none, but a new
	// call must be sent and time out the same way rather than hang.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := sb.WriteFile(ctx2, "a", "b"); !errors.Is(err, ErrBridgeUnresponsive) {
		t.Fatalf("second call: %v", err)
	}
}

func TestBridgeThatStopsReading(t *testing.T) {
	c, sb := fakeBox(t, "deaf", ClientOptions{CancelGrace: 200 * time.Millisecond, CloseTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	big := strings.Repeat("x", 900<<10) // more than a pipe holds, less than the fake's line limit
	err := sb.WriteFile(ctx, "big.txt", big)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write the bridge never reads: want an error wrapping DeadlineExceeded, got %v", err)
	}
	// Close must not wait forever for a bridge that ignores its closed stdin.
	start := time.Now()
	cerr := c.Close()
	if time.Since(start) > 10*time.Second {
		t.Errorf("Close took %s", time.Since(start))
	}
	t.Logf("Close: %v", cerr)
	if c.Err() == nil {
		t.Errorf("the client should be unusable after Close")
	}
}

func TestBridgeClosesStdoutButLivesOn(t *testing.T) {
	ctx := testCtx(t)
	c, sb := fakeBox(t, "closes-stdout", ClientOptions{})
	if _, err := sb.ReadFile(ctx, "a"); !errors.Is(err, ErrBridgeExited) {
		t.Fatalf("want ErrBridgeExited, got %v", err)
	}
	if err := syscall.Kill(c.Pid(), 0); err == nil {
		t.Errorf("a bridge whose stdout is gone should be stopped (pid %d lives)", c.Pid())
	}
}

// lateContext has a deadline that has passed while its own timer has not fired yet, as happens
// between the two under load.
type lateContext struct{ context.Context }

func (lateContext) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestDeadlinePassedBeforeTheContextNoticed(t *testing.T) {
	_, sb := fakeBox(t, "silent", ClientOptions{CancelGrace: 100 * time.Millisecond})
	err := sb.WriteFile(lateContext{context.Background()}, "a", "b")
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrCancelled wrapping DeadlineExceeded (the bridge is fine), got %v", err)
	}
	if sb.Client().Err() != nil {
		t.Fatalf("the client should still be usable: %v", sb.Client().Err())
	}
}

package daggersandbox

// lifecycle_test.go: one bridge for many sandboxes and goroutines; who stops it, and what
// closing a client does to its sandboxes.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSharedBridgeLivesUntilTheLastSandboxCloses(t *testing.T) {
	realClient(t) // skips without Docker
	ctx := testCtx(t)
	cfg := Config{Backend: "docker", Image: busybox}
	var boxes [3]*DaggerSandbox
	var wg sync.WaitGroup
	errs := make([]error, len(boxes))
	for i := range boxes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			boxes[i], errs[i] = NewDaggerSandbox(ctx, cfg)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := boxes[0].Client()
	if c == shared.client {
		t.Fatal("NewDaggerSandbox without Config.Client must use the package's shared bridge, not the test's")
	}
	for _, b := range boxes[1:] {
		if b.Client() != c {
			t.Fatalf("sandboxes made concurrently should share one bridge: pids %d and %d", c.Pid(), b.Client().Pid())
		}
	}
	child, err := boxes[0].Fork(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Many goroutines on several sandboxes of one bridge at once.
	all := append(boxes[:], child)
	var fails sync.Map
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			sb := all[g%len(all)]
			name := fmt.Sprintf("g%d.txt", g)
			if err := sb.WriteFile(ctx, name, name); err != nil {
				fails.Store(g, err)
				return
			}
			res, err := sb.Exec(ctx, "cat "+name)
			if err != nil || res.Stdout != name {
				fails.Store(g, fmt.Errorf("%+v, %v", res, err))
			}
		}(g)
	}
	wg.Wait()
	fails.Range(func(k, v any) bool {
		t.Errorf("goroutine %v: %v", k, v)
		return true
	})

	for _, b := range boxes {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if c.Err() != nil {
		t.Fatalf("the fork still holds the bridge, yet it is gone: %v", c.Err())
	}
	if _, err := child.Exec(ctx, "true"); err != nil {
		t.Fatalf("the fork should still work: %v", err)
	}
	if err := child.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("the last Close should stop the shared bridge: %v", c.Err())
	}
	if err := syscall.Kill(c.Pid(), 0); err == nil {
		t.Errorf("bridge pid %d still runs", c.Pid())
	}

	// The next sandbox starts a new bridge.
	again, err := NewDaggerSandbox(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Client() == c {
		t.Error("a closed bridge must not be reused")
	}
}

func TestClientCloseClosesItsSandboxes(t *testing.T) {
	realClient(t)
	ctx := testCtx(t)
	c, err := NewClient(ctx, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.NewSandbox(ctx, Config{Backend: "docker", Image: busybox})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Fork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "sleep 60")
		running <- err
	}()
	time.Sleep(500 * time.Millisecond) // let the exec start
	ids := []string{a.ID(), b.ID()}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-running:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("a command running at Close: want ErrClosed, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a command running at Close did not end")
	}
	for _, sb := range []*DaggerSandbox{a, b} {
		if err := sb.WriteFile(ctx, "x", "y"); !errors.Is(err, ErrClosed) {
			t.Errorf("a sandbox of a closed client: want ErrClosed, got %v", err)
		}
		if err := sb.Close(); err != nil {
			t.Errorf("closing a sandbox of a closed client: %v", err)
		}
	}
	for _, id := range ids {
		if got := containersOf(t, id); len(got) != 0 {
			t.Errorf("containers of %s left after Client.Close: %v", id, got)
		}
	}
	if _, err := c.NewSandbox(ctx, Config{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSandbox on a closed client: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

const userProgramEnv = "GO_CLIENT_USER_PROGRAM"

// runUserProgram is a program using the client that gets killed: it makes a sandbox, prints its
// id and waits.
func runUserProgram() {
	sb, err := NewDaggerSandbox(context.Background(), Config{Backend: "docker", Image: busybox})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(sb.ID())
	time.Sleep(10 * time.Minute)
	os.Exit(0)
}

func TestKilledProgramLeavesNoContainer(t *testing.T) {
	realClient(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), userProgramEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	id := strings.TrimSpace(line)
	if err != nil || !strings.HasPrefix(id, "sbx-") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the program did not make a sandbox: %q, %v", line, err)
	}
	if got := containersOf(t, id); len(got) != 1 {
		t.Fatalf("containers of %s while the program runs: %v", id, got)
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred Close runs in the program
	_ = cmd.Wait()
	// Its bridge sees EOF on stdin and closes the sandbox; give it a bounded while.
	deadline := time.Now().Add(60 * time.Second)
	for len(containersOf(t, id)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the container of %s outlived the killed program by 60 s: %v", id, containersOf(t, id))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRealBridgeKilledMidExec(t *testing.T) {
	realClient(t)
	ctx := testCtx(t)
	c, err := NewClient(ctx, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sb, err := c.NewSandbox(ctx, Config{Backend: "docker", Image: busybox})
	if err != nil {
		t.Fatal(err)
	}
	id := sb.ID()
	t.Cleanup(func() { // a SIGKILLed bridge cannot close its container: remove it for it
		if ids := containersOf(t, id); len(ids) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	})
	started := make(chan struct{})
	var once sync.Once
	go func() {
		<-started
		_ = c.cmd.Process.Kill() // SIGKILL to the bridge this test started, by its pid
	}()
	_, err = sb.Exec(ctx, "echo running; sleep 60", OnOutput(func(OutputChunk) { once.Do(func() { close(started) }) }))
	if !errors.Is(err, ErrBridgeExited) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("want ErrBridgeExited saying it was killed, got %v", err)
	}
	if e := asError(t, err); e.ExitStatus == nil || *e.ExitStatus != -1 {
		t.Errorf("ExitStatus of a killed bridge: %v", e.ExitStatus)
	}
	if _, err := sb.ReadFile(ctx, "x"); !errors.Is(err, ErrBridgeExited) {
		t.Errorf("later calls: want ErrBridgeExited, got %v", err)
	}
	if err := sb.Close(); !errors.Is(err, ErrBridgeExited) {
		t.Errorf("Close of a sandbox whose bridge died should say so, got %v", err)
	}
}

func TestManyCallsCancelledAtRandomMoments(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	if err := sb.WriteFile(ctx, "f.txt", "content"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Deadlines from 0 to 1.5 s: before the send, in flight, and after the answer.
			cctx, cancel := context.WithTimeout(ctx, time.Duration(g*g)*time.Millisecond)
			defer cancel()
			var err error
			if g%2 == 0 {
				_, err = sb.ReadFile(cctx, "f.txt")
			} else {
				_, err = sb.Exec(cctx, "cat f.txt", OnOutput(func(OutputChunk) {}))
			}
			key := "ok"
			if err != nil {
				key = "other: " + err.Error()
				if errors.Is(err, ErrCancelled) && errors.Is(err, context.DeadlineExceeded) {
					key = "cancelled"
				}
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	for k, n := range outcomes {
		if k != "ok" && k != "cancelled" {
			t.Errorf("%d calls: %s", n, k)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// The client and the sandbox are still fine.
	if s, err := sb.ReadFile(ctx, "f.txt"); err != nil || s != "content" {
		t.Fatalf("after the storm: %q, %v", s, err)
	}
}

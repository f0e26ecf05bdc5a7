package daggersandbox

// sandbox_test.go: the API against the real bridge and the real Docker engine.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestExecReturnsOutputAndExitCode(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	res, err := sb.Exec(ctx, "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatalf("a non-zero exit is a result, not an error: %v", err)
	}
	if res.ExitCode != 3 || res.Stdout != "out\n" || res.Stderr != "err\n" {
		t.Fatalf("got %+v", res)
	}
	if sb.Info().Backend != "docker" || sb.Info().Image != busybox || sb.Workdir() != "/workspace" {
		t.Errorf("info: %+v, workdir %q", sb.Info(), sb.Workdir())
	}
	res, err = sb.Exec(ctx, "cat; pwd", Stdin("from stdin\n"), Cwd("/tmp"), Env(map[string]string{"X": "1"}))
	if err != nil || res.Stdout != "from stdin\n/tmp\n" {
		t.Fatalf("stdin and cwd: %+v, %v", res, err)
	}
	res, err = sb.Exec(ctx, "od -An -tx1", StdinBytes([]byte{0, 0xff, 0x10}))
	if err != nil || strings.Join(strings.Fields(res.Stdout), " ") != "00 ff 10" {
		t.Fatalf("binary stdin: %+v, %v", res, err)
	}
}

func TestFilesRoundTrip(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	if err := sb.WriteFile(ctx, "a.txt", "content"); err != nil {
		t.Fatal(err)
	}
	if s, err := sb.ReadFile(ctx, "a.txt"); err != nil || s != "content" {
		t.Fatalf("ReadFile = %q, %v", s, err)
	}
	files := map[string]string{"x/y.txt": "deep", "x/z/w.txt": "deeper", "b.txt": "ünïcödé"}
	if err := sb.WriteFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		if got, err := sb.ReadFile(ctx, p); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	entries, err := sb.ListDirectory(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if e.Name == "x" && !e.IsDir {
			t.Errorf("x should be a directory: %+v", e)
		}
		if e.Name == "a.txt" && (e.IsDir || e.Size != 7 || e.Kind != "file") {
			t.Errorf("a.txt: %+v", e)
		}
	}
	if strings.Join(names, ",") != "a.txt,b.txt,x" {
		t.Errorf("entries %v", names)
	}
	if err := sb.DeleteFile(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	_, err = sb.ReadFile(ctx, "x/y.txt")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("after deleting x: want ErrNotFound, got %v", err)
	}
	e := asError(t, err)
	if e.Code != CodeNotFound || e.RPCCode != -32000 || !strings.Contains(e.Message, "x/y.txt") || e.Method != "sandbox/readFile" {
		t.Errorf("the code, the JSON-RPC code, the message and the method should be kept: %+v", e)
	}
	if err := sb.DeleteFile(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a missing file: want ErrNotFound, got %v", err)
	}
	if _, err := sb.ListDirectory(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("listing a missing directory: want ErrNotFound, got %v", err)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if err := sb.WriteFileBytes(ctx, "bin/all.bin", all); err != nil {
		t.Fatal(err)
	}
	got, err := sb.ReadFileBytes(ctx, "bin/all.bin")
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("ReadFileBytes = %v, %v", got, err)
	}
	if _, err := sb.ReadFile(ctx, "bin/all.bin"); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "base64") {
		t.Errorf("reading bytes as text: want ErrInvalidArgument pointing at base64, got %v", err)
	}
	if err := sb.WriteFilesBytes(ctx, map[string][]byte{"p.bin": {1, 2}, "q.bin": {}}); err != nil {
		t.Fatal(err)
	}
	if got, err := sb.ReadFileBytes(ctx, "p.bin"); err != nil || !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("p.bin = %v, %v", got, err)
	}
}

func TestWorkdirEnvAndFork(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	if err := sb.SetWorkdir(ctx, "/workspace/app"); err != nil {
		t.Fatal(err)
	}
	if sb.Workdir() != "/workspace/app" {
		t.Errorf("Workdir = %q", sb.Workdir())
	}
	sb.WithEnv("KEY", "value")
	sb.WithEnvs(map[string]string{"A": "1", "B": "2"})
	if err := sb.WriteFile(ctx, "f.txt", "parent"); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Exec(ctx, `echo "$KEY $A $B"; pwd`, Env(map[string]string{"B": "override"}))
	if err != nil || res.Stdout != "value 1 override\n/workspace/app\n" {
		t.Fatalf("env and workdir: %+v, %v", res, err)
	}
	child, err := sb.Fork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	if child.ID() == sb.ID() {
		t.Fatal("a fork is a new sandbox")
	}
	res, err = child.Exec(ctx, `cat f.txt; echo " $KEY"; pwd`)
	if err != nil || res.Stdout != "parent value\n/workspace/app\n" {
		t.Fatalf("the fork should have the files, env and workdir: %+v, %v", res, err)
	}
	if err := child.WriteFile(ctx, "f.txt", "child"); err != nil {
		t.Fatal(err)
	}
	child.WithEnv("KEY", "child")
	if s, _ := sb.ReadFile(ctx, "f.txt"); s != "parent" {
		t.Errorf("a fork's writes must not reach its parent: %q", s)
	}
	if res, _ := sb.Exec(ctx, `echo $KEY`); res == nil || res.Stdout != "value\n" {
		t.Errorf("a fork's env must not reach its parent: %+v", res)
	}
	if _, err := sb.Exec(ctx, "true", Env(map[string]string{"BAD=NAME": "x"})); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("an invalid variable name: want ErrInvalidArgument, got %v", err)
	}
}

func TestExecWithTimeoutKillsAndKeepsPartialOutput(t *testing.T) {
	sb := newBox(t, Config{ExecuteTimeout: 1})
	ctx := testCtx(t)
	_, err := sb.ExecWithTimeout(ctx, "echo started; sleep 30; echo never")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("want DeadlineExceeded and ErrTimeout, got %v", err)
	}
	e := asError(t, err)
	if e.Partial == nil || e.Partial.Stdout != "started\n" || e.Partial.ExitCode != -1 {
		t.Fatalf("the output before the kill should be kept: %+v", e.Partial)
	}
	// Exec is bounded by the same ExecuteTimeout; a Timeout option overrides it.
	if _, err := sb.Exec(ctx, "sleep 30"); !errors.Is(err, ErrTimeout) {
		t.Errorf("Exec past ExecuteTimeout: want ErrTimeout, got %v", err)
	}
	if res, err := sb.Exec(ctx, "sleep 1.5; echo ok", Timeout(20*time.Second)); err != nil || res.Stdout != "ok\n" {
		t.Errorf("Timeout option: %+v, %v", res, err)
	}
}

func TestContextCancelKillsTheCommand(t *testing.T) {
	sb := newBox(t, Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	started := make(chan struct{})
	var once sync.Once
	go func() {
		<-started
		cancel()
	}()
	_, err := sb.Exec(ctx, "echo go; sleep 120", OnOutput(func(OutputChunk) { once.Do(func() { close(started) }) }))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("want context.Canceled and ErrCancelled, got %v", err)
	}
	res, err := sb.Exec(testCtx(t), "ps -o args | grep -c '[s]leep 120' || true")
	if err != nil || strings.TrimSpace(res.Stdout) != "0" {
		t.Fatalf("the cancelled command should have been killed: %+v, %v", res, err)
	}
	// A context that is already over sends nothing.
	if err := sb.WriteFile(ctx, "a", "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("a call with a done context: %v", err)
	}
}

func TestStreamingOutput(t *testing.T) {
	sb := newBox(t, Config{})
	var mu sync.Mutex
	var chunks []OutputChunk
	res, err := sb.Exec(testCtx(t), "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2",
		OnOutput(func(c OutputChunk) {
			mu.Lock()
			chunks = append(chunks, c)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	for _, c := range chunks {
		if c.ExecID != res.ExecID {
			t.Errorf("chunk of %q in exec %q", c.ExecID, res.ExecID)
		}
		if c.Stream == "stdout" {
			out.WriteString(c.Data)
		} else {
			errs.WriteString(c.Data)
		}
	}
	if out.String() != res.Stdout || errs.String() != res.Stderr || res.Stdout != "line1\nline2\nline3\n" {
		t.Fatalf("streamed %q/%q, result %q/%q", out.String(), errs.String(), res.Stdout, res.Stderr)
	}
	if len(chunks) < 3 {
		t.Errorf("output 200 ms apart should come in separate chunks, got %d", len(chunks))
	}
}

func TestErrorsCarryStableCodes(t *testing.T) {
	sb := newBox(t, Config{Settings: map[string]any{"restrictedPaths": []string{"secrets/**"}}})
	ctx := testCtx(t)
	if err := sb.WriteFile(ctx, "secrets/key", "x"); !errors.Is(err, ErrRestrictedPath) {
		t.Errorf("want ErrRestrictedPath, got %v", err)
	}
	if err := sb.WriteFile(ctx, "", "x"); !errors.Is(err, ErrInvalidPath) && !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("an empty path: want ErrInvalidPath, got %v", err)
	}
	_, err := NewDaggerSandbox(ctx, Config{Client: sb.Client(), Backend: "docker", Image: busybox, Settings: map[string]any{"nope": 1}})
	if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("an unknown setting: want ErrInvalidArgument naming it, got %v", err)
	}
	_, err = NewDaggerSandbox(ctx, Config{Client: sb.Client(), Backend: "docker", Image: "dagger-sandbox-test/no-such-image:never"})
	if err == nil {
		t.Fatal("a missing image with no registry must fail")
	}
	t.Logf("missing image: %v", err)
	if _, err := NewDaggerSandbox(ctx, Config{Client: sb.Client(), ExecuteTimeout: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ExecuteTimeout -1: %v", err)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	sb := newBox(t, Config{})
	ctx := testCtx(t)
	id := sb.ID()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if _, err := sb.Exec(ctx, "true"); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), id) {
		t.Errorf("Exec after Close: want ErrClosed naming the sandbox, got %v", err)
	}
	if got := containersOf(t, id); len(got) != 0 {
		t.Errorf("containers left after Close: %v", got)
	}
}

func TestExportAndRefreshFromHost(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	for p, c := range map[string]string{"a.txt": "A", "sub/b.txt": "B", "node_modules/x.js": "skip"} {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sb := newBox(t, Config{BaseDir: base})
	ctx := testCtx(t)
	if err := sb.RefreshFromHost(ctx, "src", "/workspace/in", "node_modules"); err != nil {
		t.Fatal(err)
	}
	if s, err := sb.ReadFile(ctx, "in/sub/b.txt"); err != nil || s != "B" {
		t.Fatalf("refreshed file: %q, %v", s, err)
	}
	if _, err := sb.ReadFile(ctx, "in/node_modules/x.js"); !errors.Is(err, ErrNotFound) {
		t.Errorf("excluded files must not be copied: %v", err)
	}
	if err := sb.WriteFile(ctx, "in/made-inside.txt", "M"); err != nil {
		t.Fatal(err)
	}
	if err := sb.ExportDirectory(ctx, "/workspace/in", "out"); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.Walk(filepath.Join(base, "out"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(base, "out"), p)
			got = append(got, rel)
		}
		return nil
	})
	sort.Strings(got)
	if strings.Join(got, ",") != "a.txt,made-inside.txt,sub/b.txt" {
		t.Errorf("exported files (relative to BaseDir): %v", got)
	}
	if _, err := NewDaggerSandbox(ctx, Config{Client: sb.Client(), BaseDir: filepath.Join(base, "nope")}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a BaseDir that does not exist: %v", err)
	}
}

func TestNodeImage(t *testing.T) {
	sb := newBox(t, Config{Image: nodeImage})
	res, err := sb.Exec(testCtx(t), `node -e 'console.log(6*7)'`)
	if err != nil || res.Stdout != "42\n" {
		t.Fatalf("%+v, %v", res, err)
	}
}

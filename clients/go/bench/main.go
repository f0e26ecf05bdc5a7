// Command bench measures what the Go client adds to a call: it times N round trips of
// sandbox/readFile written as raw JSON-RPC lines to one bridge, and N calls of ReadFile through
// the client on another, interleaved so both see the same machine, and prints p50 and p99 of each.
//
//	go run ./bench -n 500            # from clients/go; needs the bridge and Docker
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	daggersandbox "github.com/dagger-sandbox/dagger-sandbox/clients/go"
)

func main() {
	n := flag.Int("n", 500, "round trips per side")
	backend := flag.String("backend", "docker", "backend of the sandboxes")
	image := flag.String("image", "dagger-sandbox-test/busybox:latest", "image of the sandboxes")
	size := flag.Int("size", 64, "bytes in the file read")
	flag.Parse()
	if err := run(*n, *backend, *image, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n int, backend, image string, size int) error {
	ctx := context.Background()
	path, err := daggersandbox.FindBridge("")
	if err != nil {
		return err
	}
	content := strings.Repeat("x", size)

	raw, err := startRaw(path)
	if err != nil {
		return err
	}
	defer raw.stop()
	var created struct {
		SandboxID string `json:"sandboxId"`
	}
	if err := raw.call("sandbox/create", map[string]any{"backend": backend, "image": image}, &created); err != nil {
		return err
	}
	if err := raw.call("sandbox/writeFile", map[string]any{"sandboxId": created.SandboxID, "path": "f.txt", "content": content}, nil); err != nil {
		return err
	}
	readSuffix := []byte(fmt.Sprintf(`,"method":"sandbox/readFile","params":{"sandboxId":%q,"path":"f.txt"}}`+"\n", created.SandboxID))

	sb, err := daggersandbox.NewDaggerSandbox(ctx, daggersandbox.Config{Backend: backend, Image: image, BridgePath: path})
	if err != nil {
		return err
	}
	defer sb.Close()
	if err := sb.WriteFile(ctx, "f.txt", content); err != nil {
		return err
	}

	const warmup = 20
	var direct, client []time.Duration
	for i := 0; i < n+warmup; i++ {
		t0 := time.Now()
		if err := raw.roundTrip(readSuffix); err != nil {
			return err
		}
		d := time.Since(t0)
		t0 = time.Now()
		got, err := sb.ReadFile(ctx, "f.txt")
		c := time.Since(t0)
		if err != nil {
			return err
		}
		if got != content {
			return fmt.Errorf("ReadFile returned %d bytes, want %d", len(got), len(content))
		}
		if i >= warmup {
			direct, client = append(direct, d), append(client, c)
		}
	}
	dp50, dp99 := percentiles(direct)
	cp50, cp99 := percentiles(client)
	fmt.Printf("sandbox/readFile of a %d-byte file, %s backend, N=%d each (after %d warm-up), interleaved\n", size, backend, n, warmup)
	fmt.Printf("%-28s %10s %10s\n", "", "p50", "p99")
	fmt.Printf("%-28s %10s %10s\n", "direct JSON-RPC round trip", us(dp50), us(dp99))
	fmt.Printf("%-28s %10s %10s\n", "Go client ReadFile", us(cp50), us(cp99))
	fmt.Printf("%-28s %10s %10s\n", "client overhead", us(cp50-dp50), us(cp99-dp99))
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1e3) }

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[len(s)*99/100]
}

// rawBridge is the bridge driven by hand: one request line out, one response line back.
type rawBridge struct {
	cmd   *exec.Cmd
	stdin io.Closer
	in    *bufio.Writer
	buf   []byte
	out   *bufio.Reader
	id    int
}

func startRaw(path string) (*rawBridge, error) {
	cmd := exec.Command(path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &rawBridge{cmd: cmd, stdin: stdin, in: bufio.NewWriter(stdin), out: bufio.NewReaderSize(stdout, 1<<20)}
	return r, r.call("initialize", map[string]any{"protocolVersion": "1"}, nil)
}

// roundTrip writes a request (its id, then suffix: the rest of the line) and reads the one line
// that answers it: the least any client must do.
func (r *rawBridge) roundTrip(suffix []byte) error {
	r.id++
	r.buf = append(strconv.AppendInt(append(r.buf[:0], `{"jsonrpc":"2.0","id":`...), int64(r.id), 10), suffix...)
	if _, err := r.in.Write(r.buf); err != nil {
		return err
	}
	if err := r.in.Flush(); err != nil {
		return err
	}
	line, err := r.out.ReadSlice('\n')
	if err != nil {
		return err
	}
	if bytes.Contains(line, []byte(`"error":`)) {
		return fmt.Errorf("bridge error: %s", line)
	}
	return nil
}

func (r *rawBridge) call(method string, params map[string]any, result any) error {
	r.id++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": r.id, "method": method, "params": params})
	if _, err := r.in.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := r.in.Flush(); err != nil {
		return err
	}
	line, err := r.out.ReadBytes('\n')
	if err != nil {
		return err
	}
	var msg struct {
		Result json.RawMessage  `json:"result"`
		Error  *json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		return err
	}
	if msg.Error != nil {
		return fmt.Errorf("%s: %s", method, *msg.Error)
	}
	if result != nil {
		return json.Unmarshal(msg.Result, result)
	}
	return nil
}

func (r *rawBridge) stop() {
	_ = r.in.Flush()
	_ = r.stdin.Close() // a clean shutdown: the bridge closes its sandbox and exits
	_ = r.cmd.Wait()
}

package daggersandbox

// client.go: one dagger-sandbox-bridge process: starting it, initialize, watching it die, Close.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// ProtocolVersion is the bridge protocol version this package speaks.
const ProtocolVersion = "1"

// Defaults of ClientOptions.
const (
	DefaultCancelGrace  = 15 * time.Second
	DefaultCloseTimeout = 60 * time.Second
	DefaultStartTimeout = 60 * time.Second
	DefaultMaxLineBytes = 256 << 20
)

// stderrTailBytes is how much of the bridge's stderr is kept for error messages.
const stderrTailBytes = 4096

// ClientOptions configures one bridge process.
type ClientOptions struct {
	// BridgePath is the bridge binary; "" looks where FindBridge does.
	BridgePath string
	// Args are extra command-line arguments for the bridge.
	Args []string
	// Env adds "KEY=VALUE" entries to the bridge's environment (e.g. "DAGGER_SANDBOX_LOG=info").
	Env []string
	// Stderr, if set, gets a copy of everything the bridge logs; its tail is kept for errors anyway.
	Stderr io.Writer
	// CancelGrace is how long a cancelled call waits for the bridge to confirm (default 15 s).
	CancelGrace time.Duration
	// CloseTimeout bounds Close: past it the bridge is killed (default 60 s).
	CloseTimeout time.Duration
	// StartTimeout bounds the bridge's answer to initialize (default 60 s).
	StartTimeout time.Duration
	// MaxLineBytes is the longest message accepted from the bridge (default 256 MiB).
	MaxLineBytes int
}

// Client is one running bridge process, shared by any number of sandboxes and goroutines.
type Client struct {
	opts ClientOptions
	path string
	cmd  *exec.Cmd

	stdin    *os.File
	stdout   *os.File
	writeSem chan struct{} // one writer at a time; a channel so that waiting honours contexts
	nextID   uint64        // atomic

	mu        sync.Mutex
	pending   map[uint64]*pending
	sandboxes map[*DaggerSandbox]struct{}
	closing   bool
	fatal     *Error // why the client killed the bridge (garbage, a torn write)
	deadErr   *Error // set once the bridge is gone; every later call fails with it
	refs      int    // sandboxes holding a shared client (pool.go)
	poolKey   string // "" for a client made with NewClient

	exited     chan struct{} // closed when the process has been reaped
	exitState  *os.ProcessState
	readerDone chan struct{}
	stderrDone chan struct{}
	dead       chan struct{} // closed when deadErr is set and every pending call has failed
	tail       tailBuffer

	backends     []BackendInfo
	bridgeName   string
	bridgeVer    string
	maxSendBytes int
}

// NewClient starts a bridge and completes initialize with it. The bridge lives until Close.
func NewClient(ctx context.Context, opts ClientOptions) (*Client, error) {
	if opts.CancelGrace <= 0 {
		opts.CancelGrace = DefaultCancelGrace
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = DefaultCloseTimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	path, err := FindBridge(opts.BridgePath)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts: opts, path: path, writeSem: make(chan struct{}, 1),
		pending: map[uint64]*pending{}, sandboxes: map[*DaggerSandbox]struct{}{},
		exited: make(chan struct{}), readerDone: make(chan struct{}), stderrDone: make(chan struct{}),
		dead: make(chan struct{}),
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	if err := c.initialize(ctx); err != nil {
		c.kill()
		<-c.dead
		return nil, err
	}
	return c, nil
}

// start spawns the process on pipes the client owns (so deadlines and closes reach them) and
// starts the goroutines that read stdout and stderr and reap the process.
func (c *Client) start() error {
	var files []*os.File
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	inR, inW, err1 := pipe()
	outR, outW, err2 := pipe()
	errR, errW, err3 := pipe()
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			closeAll()
			return newError(CodeBridgeStart, "", err, "could not make pipes for %s: %v", c.path, err)
		}
	}
	cmd := exec.Command(c.path, c.opts.Args...)
	cmd.Env = append(os.Environ(), c.opts.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		closeAll()
		return newError(CodeBridgeStart, "", err, "could not start %s: %v", c.path, err)
	}
	inR.Close()
	outW.Close()
	errW.Close()
	c.cmd, c.stdin, c.stdout = cmd, inW, outR
	go c.readStderr(errR)
	go c.reap()
	go c.readLoop()
	return nil
}

// initialize is the first request; the bridge must answer it in time and speak our version.
func (c *Client) initialize(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	params := map[string]any{
		"protocolVersion": ProtocolVersion,
		"clientInfo":      map[string]string{"name": "dagger-sandbox-go", "version": "0.1.0"},
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
		ServerInfo      struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"serverInfo"`
		Backends     []BackendInfo `json:"backends"`
		Capabilities struct {
			MaxLineBytes int `json:"maxLineBytes"`
		} `json:"capabilities"`
	}
	err := c.roundTrip(ctx, "initialize", params, &res, nil, false)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == CodeCancelled {
			return newError(CodeBridgeStart, "initialize", ctx.Err(),
				"%s (pid %d) did not answer initialize: %v", c.path, c.cmd.Process.Pid, ctx.Err()).withTail(c)
		}
		return err
	}
	if res.ProtocolVersion != ProtocolVersion {
		return newError(CodeBridgeProtocol, "initialize", nil,
			"%s speaks protocol version %q; this client speaks %q", c.path, res.ProtocolVersion, ProtocolVersion)
	}
	c.backends, c.bridgeName, c.bridgeVer = res.Backends, res.ServerInfo.Name, res.ServerInfo.Version
	c.maxSendBytes = res.Capabilities.MaxLineBytes
	return nil
}

// Backends says which backends the bridge found when it started.
func (c *Client) Backends() []BackendInfo { return append([]BackendInfo(nil), c.backends...) }

// BridgeVersion is the version the bridge reported in initialize.
func (c *Client) BridgeVersion() string { return c.bridgeVer }

// Pid is the bridge's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// Path is the bridge binary this client runs.
func (c *Client) Path() string { return c.path }

// Err is nil while the bridge is usable, else why it is not (an *Error).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadErr != nil {
		return c.deadErr
	}
	if c.closing {
		return newError(CodeClosed, "", nil, "the client is closed")
	}
	return nil
}

// Close closes every sandbox of this client and stops the bridge: it closes the bridge's stdin
// (a clean shutdown in which the bridge removes every container it made), waits up to
// CloseTimeout, then kills it. Calls still running fail with ErrClosed. Close is idempotent; it
// returns an error only if the bridge did not end cleanly.
func (c *Client) Close() error {
	c.mu.Lock()
	first := !c.closing
	c.closing = true
	sbs := c.sandboxes
	c.sandboxes = map[*DaggerSandbox]struct{}{}
	c.mu.Unlock()
	for sb := range sbs {
		sb.markClosed()
	}
	timer := time.NewTimer(c.opts.CloseTimeout)
	defer timer.Stop()
	if first {
		select {
		case c.writeSem <- struct{}{}:
			c.stdin.Close()
			<-c.writeSem
		case <-c.dead:
		case <-timer.C:
			c.kill()
		}
	}
	select {
	case <-c.dead:
	case <-timer.C:
		c.kill()
		<-c.dead
	}
	if first && c.exitState != nil && !c.exitState.Success() {
		return newError(CodeBridgeExited, "", nil, "the bridge (pid %d) ended with %s", c.Pid(), c.exitState).withTail(c)
	}
	return nil
}

// kill ends the process (only ours, by its pid).
func (c *Client) kill() {
	_ = c.cmd.Process.Kill()
}

// fail records why the client gives up on the bridge and kills it; readLoop then fails every call.
func (c *Client) fail(e *Error) {
	c.mu.Lock()
	if c.fatal == nil {
		c.fatal = e
	}
	c.mu.Unlock()
	c.kill()
}

// reap waits for the process; if its stdout stays open after it exited (a child of it holding
// the pipe), the pipe is closed so the reader cannot wait forever.
func (c *Client) reap() {
	_ = c.cmd.Wait() // the status is in ProcessState; stdio are our own files, so Wait copies nothing
	c.exitState = c.cmd.ProcessState
	close(c.exited)
	select {
	case <-c.readerDone:
	case <-time.After(2 * time.Second):
		c.stdout.Close()
	}
}

// readStderr drains the bridge's stderr (a full pipe would stall it), keeping the tail.
func (c *Client) readStderr(r *os.File) {
	defer close(c.stderrDone)
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.tail.write(buf[:n])
			if c.opts.Stderr != nil {
				_, _ = c.opts.Stderr.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// readLoop reads the bridge's stdout until it ends or breaks the protocol, then fails every call.
func (c *Client) readLoop() {
	r := bufio.NewReaderSize(c.stdout, 64<<10)
	for {
		line, err := readLine(r, c.opts.MaxLineBytes)
		if len(line) > 0 && !c.handleLine(line) {
			break
		}
		if errors.Is(err, errLineTooLong) {
			c.fail(newError(CodeBridgeProtocol, "", nil,
				"the bridge wrote a line longer than %d bytes (ClientOptions.MaxLineBytes)", c.opts.MaxLineBytes))
			break
		}
		if err != nil {
			break
		}
	}
	close(c.readerDone)
	c.finish()
}

// finish runs once the bridge's stdout is done: it reaps the process, says why it ended, and
// fails every call still waiting.
func (c *Client) finish() {
	select {
	case <-c.exited:
	case <-time.After(3 * time.Second):
		c.kill() // stdout closed but the process lives on: it is of no use any more
		<-c.exited
	}
	select {
	case <-c.stderrDone:
	case <-time.After(time.Second):
	}
	c.stdout.Close()
	c.mu.Lock()
	var err *Error
	switch {
	case c.fatal != nil:
		err = c.fatal.withTail(c)
	case c.closing && c.exitState.Success():
		err = newError(CodeClosed, "", nil, "the client is closed")
	default:
		err = newError(CodeBridgeExited, "", nil, "the bridge (pid %d) exited unexpectedly (%s)",
			c.cmd.Process.Pid, c.exitState).withTail(c)
		code := c.exitState.ExitCode()
		err.ExitStatus = &code
	}
	c.deadErr = err
	pend := c.pending
	c.pending = map[uint64]*pending{}
	c.mu.Unlock()
	for _, p := range pend {
		p.finish(nil, err.forMethod(p.method))
	}
	c.stdin.Close()
	close(c.dead)
}

// withTail adds the bridge's stderr tail to e.
func (e *Error) withTail(c *Client) *Error {
	e.StderrTail = c.tail.String()
	return e
}

// forMethod is a copy of e naming method.
func (e *Error) forMethod(method string) *Error {
	cp := *e
	if cp.Method == "" {
		cp.Method = method
	}
	return &cp
}

// tailBuffer keeps the last stderrTailBytes bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > stderrTailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrTailBytes:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line of at most max bytes, without the newline.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		return line, err
	}
}

// newID numbers requests.
func (c *Client) newID() uint64 { return atomic.AddUint64(&c.nextID, 1) }

// encodeRequest is one request line.
func encodeRequest(id uint64, method string, params any) ([]byte, error) {
	msg := struct {
		JSONRPC string `json:"jsonrpc"`
		ID      uint64 `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", id, method, params}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, newError(CodeInvalidArgument, method, err, "params cannot be sent: %v", err)
	}
	return append(b, '\n'), nil
}

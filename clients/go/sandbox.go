package daggersandbox

// sandbox.go: DaggerSandbox: making one, running commands in it, forking and closing it.

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultImage is the image a sandbox starts from when Config.Image is empty.
const DefaultImage = "node:20-alpine3.22"

// DefaultExecuteTimeout is the command timeout, in seconds, when Config.ExecuteTimeout is 0.
const DefaultExecuteTimeout = 600

// Config describes a sandbox to make.
type Config struct {
	// Image to start from; default "node:20-alpine3.22".
	Image string
	// ExecuteTimeout bounds every command, in seconds; default 600.
	ExecuteTimeout int
	// BaseDir is the host directory relative host paths (ExportDirectory, RefreshFromHost) are
	// resolved against; default the process's working directory. Nothing is copied from it
	// unless RefreshFromHost is called.
	BaseDir string
	// Backend is "auto" (the default), "dagger", "docker" or "local".
	Backend string
	// BridgePath is the bridge binary; default $DAGGER_SANDBOX_BRIDGE, then next to the
	// executable, then PATH (see FindBridge).
	BridgePath string
	// Client, if set, is the bridge to use (BridgePath is then ignored); by default the bridge
	// is shared by every sandbox of the program (see the package doc).
	Client *Client
	// CACertificates are certificate authorities the sandbox trusts besides its image's, for
	// networks that intercept TLS with their own CA: []string{HostCA} (the host's system
	// bundle) or PEM file paths on the host (relative ones from BaseDir). nil keeps the default ($DAGGER_SANDBOX_CA_CERTIFICATES,
	// else none); an empty non-nil slice turns that default off. A path that does not exist, or
	// HostCA mixed with paths, is ErrInvalidArgument.
	CACertificates []string
	// Caches are the dependency caches to mount, from CacheKinds (shared by this user's
	// sandboxes, see docs/configuration.md). nil keeps the default: none for a sandbox, all for
	// ValidateProject; an empty non-nil slice mounts none. An unknown kind is ErrInvalidArgument.
	Caches []string
	// Settings are further keys of the sandbox config, as docs/configuration.md spells them
	// ("network": true, "memoryMb": 4096, "restrictedPaths": [...], "env": {...}, ...). The
	// typed fields above win over the same keys here.
	Settings map[string]any
	// Persistent creates the sandbox through the daemon (started when none runs), so it outlives
	// this program; reach it again with Connect. Close then frees only the handle (Delete deletes).
	// Settings "stateDir" and "ttlSeconds" go to the daemon.
	Persistent bool
}

// HostCA in Config.CACertificates trusts the host's system certificate bundle ($SSL_CERT_FILE,
// else /etc/ssl/certs/ca-certificates.crt).
const HostCA = "host"

// CacheKinds are the dependency caches Config.Caches may name.
var CacheKinds = []string{"npm", "pnpm", "yarn", "pip", "node-modules"}

// configParams is the sandbox config as the bridge takes it: Settings, then the typed fields.
func (cfg *Config) configParams(method string) (map[string]any, error) {
	params := map[string]any{}
	for k, v := range cfg.Settings {
		params[k] = v
	}
	params["backend"] = cfg.Backend
	params["image"] = cfg.Image
	if cfg.CACertificates != nil {
		switch {
		case len(cfg.CACertificates) == 1 && cfg.CACertificates[0] == HostCA:
			params["caCertificates"] = HostCA
		default:
			paths := make([]string, 0, len(cfg.CACertificates))
			for _, p := range cfg.CACertificates {
				if p == HostCA {
					return nil, newError(CodeInvalidArgument, method, nil,
						"CACertificates: HostCA cannot be mixed with file paths; give []string{HostCA} or paths")
				}
				if cfg.BaseDir != "" && !filepath.IsAbs(p) {
					p = filepath.Join(cfg.BaseDir, p)
				}
				paths = append(paths, absolute(p))
			}
			params["caCertificates"] = paths
		}
	}
	if cfg.Caches != nil {
		params["caches"] = append([]string{}, cfg.Caches...)
	}
	return params, nil
}

// DaggerSandbox is one isolated sandbox. Its methods are safe for concurrent use.
type DaggerSandbox struct {
	c       *Client
	info    SandboxInfo
	baseDir string
	timeout time.Duration

	mu      sync.Mutex
	env     map[string]string
	workdir string
	closed  bool
}

// NewDaggerSandbox makes a sandbox on the shared bridge (or cfg.Client). Close frees it.
func NewDaggerSandbox(ctx context.Context, cfg Config) (*DaggerSandbox, error) {
	if cfg.Client != nil {
		return cfg.Client.NewSandbox(ctx, cfg)
	}
	c, err := sharedFor(ctx, cfg.BridgePath)
	if err != nil {
		return nil, err
	}
	sb, err := c.newSandbox(ctx, cfg)
	if err != nil {
		c.release()
		return nil, err
	}
	return sb, nil
}

// NewSandbox makes a sandbox on this client's bridge; Client.Close closes it too.
func (c *Client) NewSandbox(ctx context.Context, cfg Config) (*DaggerSandbox, error) {
	return c.newSandbox(ctx, cfg)
}

func (c *Client) newSandbox(ctx context.Context, cfg Config) (*DaggerSandbox, error) {
	if cfg.ExecuteTimeout < 0 {
		return nil, newError(CodeInvalidArgument, "sandbox/create", nil, "ExecuteTimeout is %d; give seconds > 0, or 0 for %d",
			cfg.ExecuteTimeout, DefaultExecuteTimeout)
	}
	if cfg.ExecuteTimeout == 0 {
		cfg.ExecuteTimeout = DefaultExecuteTimeout
	}
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.Backend == "" {
		cfg.Backend = "auto"
	}
	if cfg.BaseDir != "" {
		if st, err := os.Stat(cfg.BaseDir); err != nil || !st.IsDir() {
			return nil, newError(CodeInvalidArgument, "sandbox/create", err, "BaseDir %q is not a directory", cfg.BaseDir)
		}
		cfg.BaseDir = absolute(cfg.BaseDir)
	}
	params, err := cfg.configParams("sandbox/create")
	if err != nil {
		return nil, err
	}
	params["timeoutMs"] = cfg.ExecuteTimeout * 1000
	if cfg.Persistent {
		params["persistent"] = true
	}
	var info SandboxInfo
	if err := c.call(ctx, "sandbox/create", params, &info); err != nil {
		return nil, err
	}
	return c.adopt(info, cfg.BaseDir, time.Duration(cfg.ExecuteTimeout)*time.Second, nil), nil
}

// adopt makes the Go side of a sandbox the bridge made, registered with c so Close reaches it.
func (c *Client) adopt(info SandboxInfo, baseDir string, timeout time.Duration, env map[string]string) *DaggerSandbox {
	sb := &DaggerSandbox{c: c, info: info, baseDir: baseDir, timeout: timeout, env: env, workdir: info.Workdir}
	c.mu.Lock()
	if c.closing || c.deadErr != nil {
		sb.closed = true // the bridge closes it as it ends
	} else {
		c.sandboxes[sb] = struct{}{}
	}
	c.mu.Unlock()
	return sb
}

// ID is the bridge's id of this sandbox.
func (s *DaggerSandbox) ID() string { return s.info.ID }

// Info describes the sandbox as it was made (backend, isolation, image, ...).
func (s *DaggerSandbox) Info() SandboxInfo { return s.info }

// Client is the bridge this sandbox lives in.
func (s *DaggerSandbox) Client() *Client { return s.c }

// Workdir is the current working directory of commands (SetWorkdir changes it).
func (s *DaggerSandbox) Workdir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workdir
}

// WithEnv sets a variable for every later command of this sandbox (and of its later forks).
// A name the engine refuses makes the next Exec fail with ErrInvalidArgument.
func (s *DaggerSandbox) WithEnv(key, value string) {
	s.WithEnvs(map[string]string{key: value})
}

// WithEnvs sets several variables as WithEnv does.
func (s *DaggerSandbox) WithEnvs(envs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.env == nil {
		s.env = map[string]string{}
	}
	for k, v := range envs {
		s.env[k] = v
	}
}

type execParams struct {
	SandboxID     string            `json:"sandboxId"`
	Command       string            `json:"command"`
	Env           map[string]string `json:"env,omitempty"`
	Cwd           string            `json:"cwd,omitempty"`
	TimeoutMs     int64             `json:"timeoutMs,omitempty"`
	Stdin         *string           `json:"stdin,omitempty"`
	StdinEncoding string            `json:"stdinEncoding,omitempty"`
	Stream        bool              `json:"stream,omitempty"`
}

// Exec runs command with `sh -c` in the workdir, bounded by ctx and by the sandbox's
// ExecuteTimeout (or a Timeout option). A non-zero exit is a result. On timeout the command is
// killed and the error matches ErrTimeout and context.DeadlineExceeded, with what it printed in
// (*Error).Partial; when ctx ends, the command is killed and the error wraps ctx.Err().
func (s *DaggerSandbox) Exec(ctx context.Context, command string, opts ...ExecOption) (*ExecResult, error) {
	var st execSettings
	for _, o := range opts {
		o(&st)
	}
	return s.exec(ctx, command, &st)
}

// ExecWithTimeout is Exec bounded by the sandbox's ExecuteTimeout, with ctx given the same
// deadline (plus CancelGrace for the kill), so that not even an unresponsive bridge holds it
// longer. On timeout errors.Is(err, context.DeadlineExceeded) is true.
func (s *DaggerSandbox) ExecWithTimeout(ctx context.Context, command string, opts ...ExecOption) (*ExecResult, error) {
	st := execSettings{timeout: s.timeout}
	for _, o := range opts {
		o(&st)
	}
	ctx, cancel := context.WithTimeout(ctx, st.timeout+s.c.opts.CancelGrace)
	defer cancel()
	return s.exec(ctx, command, &st)
}

func (s *DaggerSandbox) exec(ctx context.Context, command string, st *execSettings) (*ExecResult, error) {
	if st.timeout < 0 {
		return nil, newError(CodeInvalidArgument, "sandbox/exec", nil, "timeout %s is negative", st.timeout)
	}
	p := execParams{SandboxID: s.info.ID, Command: command, Cwd: st.cwd, Stdin: st.stdin, Stream: st.onOutput != nil}
	if st.timeout > 0 {
		p.TimeoutMs = (st.timeout + time.Millisecond - 1).Milliseconds()
	}
	if st.stdinB64 {
		p.StdinEncoding = "base64"
	}
	s.mu.Lock()
	closed := s.closed
	if len(s.env) > 0 || len(st.env) > 0 {
		p.Env = make(map[string]string, len(s.env)+len(st.env))
		for k, v := range s.env {
			p.Env[k] = v
		}
		for k, v := range st.env {
			p.Env[k] = v
		}
	}
	s.mu.Unlock()
	if closed {
		return nil, s.closedError("sandbox/exec")
	}
	var w wireResult
	if err := s.c.roundTrip(ctx, "sandbox/exec", p, &w, st.onOutput, true); err != nil {
		return nil, err
	}
	return w.toResult(), nil
}

// SetWorkdir changes the directory commands run in and relative paths resolve against; it is
// created if missing.
func (s *DaggerSandbox) SetWorkdir(ctx context.Context, path string) error {
	var res struct {
		Workdir string `json:"workdir"`
	}
	if err := s.call(ctx, "sandbox/setWorkdir", map[string]any{"path": path}, &res); err != nil {
		return err
	}
	s.mu.Lock()
	s.workdir = res.Workdir
	s.mu.Unlock()
	return nil
}

// Fork makes an independent copy of the sandbox (files, env, workdir); close it on its own.
func (s *DaggerSandbox) Fork(ctx context.Context) (*DaggerSandbox, error) {
	s.c.retain()
	var info SandboxInfo
	if err := s.call(ctx, "sandbox/fork", nil, &info); err != nil {
		s.c.release()
		return nil, err
	}
	s.mu.Lock()
	env := make(map[string]string, len(s.env))
	for k, v := range s.env {
		env[k] = v
	}
	s.mu.Unlock()
	return s.c.adopt(info, s.baseDir, s.timeout, env), nil
}

// Close frees the sandbox and its engine resources; it is idempotent. The last Close of a
// sandbox on the shared bridge stops that bridge.
func (s *DaggerSandbox) Close() error {
	if !s.markClosed() {
		return nil
	}
	c := s.c
	c.mu.Lock()
	delete(c.sandboxes, s)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CloseTimeout)
	err := c.call(ctx, "sandbox/close", map[string]any{"sandboxId": s.info.ID}, nil)
	cancel()
	c.release()
	if e, ok := err.(*Error); ok && e.Code == CodeClosed {
		return nil // the client closed first, and with it the sandbox
	}
	return err
}

// markClosed flips the sandbox to closed; false if it already was.
func (s *DaggerSandbox) markClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	return true
}

func (s *DaggerSandbox) closedError(method string) *Error {
	return newError(CodeClosed, method, nil, "sandbox %s is closed; create a new sandbox (or fork before closing) to keep working",
		s.info.ID)
}

// call runs a sandbox method with sandboxId added to params.
func (s *DaggerSandbox) call(ctx context.Context, method string, params map[string]any, result any) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return s.closedError(method)
	}
	if params == nil {
		params = map[string]any{}
	}
	params["sandboxId"] = s.info.ID
	return s.c.call(ctx, method, params, result)
}

// retain adds a reference to a shared client (a fork about to be made).
func (c *Client) retain() {
	if c.poolKey == "" {
		return
	}
	pool.mu.Lock()
	c.refs++
	pool.mu.Unlock()
}

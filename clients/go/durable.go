package daggersandbox

// Durable sandboxes: Stop and Resume (files kept, nothing running meanwhile; calls fail with
// ErrStopped), Connect to a sandbox the daemon owns by id from any program, and Delete.

import (
	"context"
	"time"
)

// ConnectOptions says where the daemon is and what applies to the connected handle only.
type ConnectOptions struct {
	// StateDir is the daemon's state dir; default $DAGGER_SANDBOX_STATE_DIR, then the default.
	StateDir string
	// ExecuteTimeout bounds every command of this handle, in seconds; default 600.
	ExecuteTimeout int
	// BridgePath is the bridge binary, as for Config.
	BridgePath string
	// Client, if set, is the bridge to use.
	Client *Client
}

// Connect returns a handle on sandbox id, which the daemon owns (made with Config.Persistent or
// through the daemon's API), starting the daemon when none runs. Close frees only the handle;
// Delete deletes the sandbox.
func Connect(ctx context.Context, id string, opts ConnectOptions) (*DaggerSandbox, error) {
	if opts.Client != nil {
		return opts.Client.Connect(ctx, id, opts)
	}
	path, err := FindBridge(opts.BridgePath)
	if err != nil {
		return nil, err
	}
	c, err := acquireShared(ctx, path)
	if err != nil {
		return nil, err
	}
	sb, err := c.connect(ctx, id, opts)
	if err != nil {
		c.release()
		return nil, err
	}
	return sb, nil
}

// Connect is the package-level Connect on this client's bridge.
func (c *Client) Connect(ctx context.Context, id string, opts ConnectOptions) (*DaggerSandbox, error) {
	return c.connect(ctx, id, opts)
}

func (c *Client) connect(ctx context.Context, id string, opts ConnectOptions) (*DaggerSandbox, error) {
	if opts.ExecuteTimeout < 0 {
		return nil, newError(CodeInvalidArgument, "sandbox/connect", nil, "ExecuteTimeout is %d; give seconds > 0",
			opts.ExecuteTimeout)
	}
	if opts.ExecuteTimeout == 0 {
		opts.ExecuteTimeout = DefaultExecuteTimeout
	}
	params := map[string]any{"sandboxId": id, "config": map[string]any{"timeoutMs": opts.ExecuteTimeout * 1000}}
	if opts.StateDir != "" {
		params["stateDir"] = opts.StateDir
	}
	var info SandboxInfo
	if err := c.call(ctx, "sandbox/connect", params, &info); err != nil {
		return nil, err
	}
	return c.adopt(info, "", time.Duration(opts.ExecuteTimeout)*time.Second, nil), nil
}

// Stop frees the sandbox's CPU and memory and keeps its files; calls fail with ErrStopped until
// Resume.
func (s *DaggerSandbox) Stop(ctx context.Context) error {
	return s.call(ctx, "sandbox/stop", nil, nil)
}

// Resume brings a stopped sandbox back with the same files, env and workdir.
func (s *DaggerSandbox) Resume(ctx context.Context) error {
	return s.call(ctx, "sandbox/resume", nil, nil)
}

// Delete frees the sandbox for good: a sandbox the daemon owns is deleted there (Close leaves it);
// any other is closed.
func (s *DaggerSandbox) Delete(ctx context.Context) error {
	if !s.markClosed() {
		return nil
	}
	c := s.c
	c.mu.Lock()
	delete(c.sandboxes, s)
	c.mu.Unlock()
	err := c.call(ctx, "sandbox/close", map[string]any{"sandboxId": s.info.ID, "delete": true}, nil)
	c.release()
	return err
}

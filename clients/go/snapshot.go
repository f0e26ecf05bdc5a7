package daggersandbox

// snapshot.go: snapshots: a sandbox's files, env and workdir saved under an id (and a name), and
// sandboxes started from one. Snapshots outlive the sandbox, the bridge and the program: only
// DeleteSnapshot removes one.

import (
	"context"
	"time"
)

// Snapshot describes a saved sandbox state.
type Snapshot struct {
	// ID is "snap-" and 12 hex digits.
	ID string `json:"id"`
	// Name is the unique name given when it was taken ("" if none); usable instead of the ID.
	Name string `json:"name"`
	// Backend is the backend it was taken on; sandboxes made from it run there.
	Backend string `json:"backend"`
	// CreatedAt is when it was taken.
	CreatedAt time.Time `json:"createdAt"`
	// Size is its size in bytes where the engine says cheaply; nil on Dagger.
	Size *int64 `json:"size"`
	// Workdir is the working directory it keeps.
	Workdir string `json:"workdir"`
	// Env is the environment it keeps, without secret values.
	Env map[string]string `json:"env"`
	// SecretEnv names variables whose values were not kept (they match the sandbox's
	// secretPatterns); pass them in the Settings "env" of NewDaggerSandboxFromSnapshot.
	SecretEnv []string `json:"secretEnv"`
	// Image is the image the sandbox was created from ("" on local).
	Image string `json:"image"`
	// Source is the id of the sandbox it was taken from.
	Source string `json:"source"`
	// EngineRef is where the engine keeps it: a Docker image reference, the local copy's
	// directory, or "dagger".
	EngineRef string `json:"engineRef"`
}

// Snapshot saves the sandbox's files, env (including what WithEnv set) and workdir, named name
// when it is not "" (names are unique). The sandbox keeps running.
func (s *DaggerSandbox) Snapshot(ctx context.Context, name string) (*Snapshot, error) {
	s.mu.Lock()
	env := make(map[string]string, len(s.env))
	for k, v := range s.env {
		env[k] = v
	}
	s.mu.Unlock()
	// WithEnv lives on this side until a command runs: the bridge's sandbox must hold it to save it.
	if len(env) > 0 {
		if err := s.call(ctx, "sandbox/withEnv", map[string]any{"env": env}, nil); err != nil {
			return nil, err
		}
	}
	params := map[string]any{}
	if name != "" {
		params["name"] = name
	}
	var snap Snapshot
	if err := s.call(ctx, "sandbox/snapshot", params, &snap); err != nil {
		return nil, err
	}
	return &snap, nil
}

// NewDaggerSandboxFromSnapshot makes a sandbox with the files, env and workdir of the snapshot
// ref (its ID or Name) on the shared bridge (or cfg.Client). cfg.Image must be empty (the
// snapshot is the image) and cfg.Backend empty, "auto" or the snapshot's; cfg.Settings["env"]
// is added over the snapshot's env and brings back the secrets it did not keep.
func NewDaggerSandboxFromSnapshot(ctx context.Context, ref string, cfg Config) (*DaggerSandbox, error) {
	if cfg.Client != nil {
		return cfg.Client.NewSandboxFromSnapshot(ctx, ref, cfg)
	}
	c, err := sharedFor(ctx, cfg.BridgePath)
	if err != nil {
		return nil, err
	}
	sb, err := c.NewSandboxFromSnapshot(ctx, ref, cfg)
	if err != nil {
		c.release()
		return nil, err
	}
	return sb, nil
}

// NewSandboxFromSnapshot is NewDaggerSandboxFromSnapshot on this client's bridge.
func (c *Client) NewSandboxFromSnapshot(ctx context.Context, ref string, cfg Config) (*DaggerSandbox, error) {
	if cfg.Image != "" {
		return nil, newError(CodeInvalidArgument, "sandbox/fromSnapshot", nil,
			"Config.Image is %q: a sandbox from a snapshot starts from the snapshot; leave it empty", cfg.Image)
	}
	if cfg.ExecuteTimeout < 0 {
		return nil, newError(CodeInvalidArgument, "sandbox/fromSnapshot", nil, "ExecuteTimeout is %d; give seconds > 0, or 0 for %d",
			cfg.ExecuteTimeout, DefaultExecuteTimeout)
	}
	if cfg.ExecuteTimeout == 0 {
		cfg.ExecuteTimeout = DefaultExecuteTimeout
	}
	if cfg.BaseDir != "" {
		cfg.BaseDir = absolute(cfg.BaseDir)
	}
	config := map[string]any{}
	for k, v := range cfg.Settings {
		config[k] = v
	}
	if cfg.Backend != "" {
		config["backend"] = cfg.Backend
	}
	config["timeoutMs"] = cfg.ExecuteTimeout * 1000
	var info SandboxInfo
	if err := c.call(ctx, "sandbox/fromSnapshot", map[string]any{"snapshot": ref, "config": config}, &info); err != nil {
		return nil, err
	}
	return c.adopt(info, cfg.BaseDir, time.Duration(cfg.ExecuteTimeout)*time.Second, nil), nil
}

// ListSnapshots lists every snapshot on the engines that answer, oldest first.
func (c *Client) ListSnapshots(ctx context.Context) ([]Snapshot, error) {
	var res struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if err := c.call(ctx, "snapshot/list", map[string]any{}, &res); err != nil {
		return nil, err
	}
	return res.Snapshots, nil
}

// InspectSnapshot returns the snapshot with this ID or Name; the error matches ErrNotFound when
// there is none.
func (c *Client) InspectSnapshot(ctx context.Context, ref string) (*Snapshot, error) {
	var snap Snapshot
	if err := c.call(ctx, "snapshot/inspect", map[string]any{"snapshot": ref}, &snap); err != nil {
		return nil, err
	}
	return &snap, nil
}

// DeleteSnapshot deletes a snapshot and its data and returns what was deleted; sandboxes made
// from it keep running. The error matches ErrNotFound when there is no such snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, ref string) (*Snapshot, error) {
	var snap Snapshot
	if err := c.call(ctx, "snapshot/delete", map[string]any{"snapshot": ref}, &snap); err != nil {
		return nil, err
	}
	return &snap, nil
}

// sharedFor is the shared bridge at path (found as FindBridge does), with a reference taken.
func sharedFor(ctx context.Context, bridgePath string) (*Client, error) {
	path, err := FindBridge(bridgePath)
	if err != nil {
		return nil, err
	}
	return acquireShared(ctx, path)
}

package daggersandbox

// pool.go: the bridge NewDaggerSandbox shares per bridge path, counted by the sandboxes using it.

import (
	"context"
	"sync"
)

// poolEntry is a shared client, or the start of one that other callers wait for.
type poolEntry struct {
	ready  chan struct{}
	client *Client
	err    error
}

var pool = struct {
	mu      sync.Mutex
	entries map[string]*poolEntry
}{entries: map[string]*poolEntry{}}

// acquireShared returns the running shared bridge at path (starting it if there is none or it
// died) with one more reference held for the caller.
func acquireShared(ctx context.Context, path string) (*Client, error) {
	for {
		pool.mu.Lock()
		e := pool.entries[path]
		if e == nil {
			e = &poolEntry{ready: make(chan struct{})}
			pool.entries[path] = e
			pool.mu.Unlock()
			c, err := NewClient(ctx, ClientOptions{BridgePath: path})
			pool.mu.Lock()
			e.client, e.err = c, err
			if err != nil {
				delete(pool.entries, path)
			} else {
				c.poolKey = path
				c.refs++
			}
			close(e.ready)
			pool.mu.Unlock()
			return c, err
		}
		pool.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, newError(CodeCancelled, "", ctx.Err(), "%v while the bridge was starting", ctx.Err())
		}
		pool.mu.Lock()
		if e.err == nil && pool.entries[path] == e && e.client.Err() == nil {
			e.client.refs++
			pool.mu.Unlock()
			return e.client, nil
		}
		if pool.entries[path] == e {
			delete(pool.entries, path) // it died: the next loop starts a new one
		}
		pool.mu.Unlock()
		if e.err != nil && ctx.Err() != nil {
			return nil, e.err
		}
	}
}

// release drops a reference to a shared client; the last one closes it.
func (c *Client) release() {
	if c.poolKey == "" {
		return
	}
	pool.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && pool.entries[c.poolKey] != nil && pool.entries[c.poolKey].client == c {
		delete(pool.entries, c.poolKey)
	}
	pool.mu.Unlock()
	if last {
		_ = c.Close()
	}
}

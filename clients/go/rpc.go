package daggersandbox

// rpc.go: JSON-RPC over the bridge's pipes: requests and their answers, output notifications,
// cancellation, and what counts as garbage.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"time"
)

// reply is the answer to one request: a result or an error.
type reply struct {
	result json.RawMessage
	err    *Error
}

// pending is a request waiting for its answer.
type pending struct {
	method string
	done   chan reply       // buffered: the reader never blocks on it
	out    chan OutputChunk // exec/output for this request; nil unless streaming. Closed by the reader only.
	stop   chan struct{}    // closed by the caller when it gives up, so the reader never blocks on out
}

// finish hands the answer over; called by the reader goroutine only, once.
func (p *pending) finish(result json.RawMessage, err *Error) {
	if p.out != nil {
		close(p.out)
	}
	p.done <- reply{result, err}
}

// wireMessage is any line the bridge writes.
type wireMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *wireError      `json:"error"`
}

// call sends a request and waits for its answer; see roundTrip.
func (c *Client) call(ctx context.Context, method string, params, result any) error {
	return c.roundTrip(ctx, method, params, result, nil, true)
}

// roundTrip sends method and decodes the answer into result. When ctx ends first and cancel is
// true, $/cancelRequest is sent and the bridge's answer awaited for CancelGrace: a CANCELLED error
// then wraps ctx.Err(), and a result that won the race is returned as a success (so that, say, a
// sandbox that was made is never lost).
func (c *Client) roundTrip(ctx context.Context, method string, params, result any, onOut func(OutputChunk), cancel bool) error {
	id := c.newID()
	line, err := encodeRequest(id, method, params)
	if err != nil {
		return err
	}
	if c.maxSendBytes > 0 && len(line) > c.maxSendBytes {
		return newError(CodeInvalidArgument, method, nil,
			"the request is %d bytes, over the bridge's limit of %d for one message (--max-line-bytes); "+
				"send the content in smaller parts", len(line), c.maxSendBytes)
	}
	p := &pending{method: method, done: make(chan reply, 1)}
	var consumed chan struct{}
	if onOut != nil {
		p.out, p.stop, consumed = make(chan OutputChunk, 64), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(consumed)
			for {
				select {
				case chunk, ok := <-p.out:
					if !ok {
						return
					}
					onOut(chunk)
				case <-p.stop:
					return
				}
			}
		}()
	}
	// giveUp stops the output goroutine and forgets the request (the bridge may still answer it).
	giveUp := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		if p.stop != nil {
			close(p.stop)
			<-consumed
		}
	}
	c.mu.Lock()
	switch {
	case c.deadErr != nil:
		err = c.deadErr.forMethod(method)
	case c.closing:
		err = newError(CodeClosed, method, nil, "the client is closed")
	default:
		c.pending[id] = p
	}
	c.mu.Unlock()
	if err != nil {
		if p.stop != nil {
			close(p.stop)
			<-consumed
		}
		return err
	}
	if err := c.write(ctx, method, line); err != nil {
		giveUp()
		return err
	}
	var r reply
	select {
	case r = <-p.done:
	case <-ctx.Done():
		if !cancel {
			giveUp()
			return newError(CodeCancelled, method, ctx.Err(), "%v", ctx.Err())
		}
		c.sendCancel(id)
		timer := time.NewTimer(c.opts.CancelGrace)
		select {
		case r = <-p.done:
			timer.Stop()
			if r.err != nil && r.err.Code == CodeCancelled {
				r.err.cause = ctx.Err()
			}
		case <-timer.C:
			giveUp()
			return newError(CodeBridgeUnresponsive, method, ctx.Err(),
				"%v, and the bridge did not confirm $/cancelRequest within %s", ctx.Err(), c.opts.CancelGrace)
		}
	}
	if consumed != nil {
		<-consumed // every chunk has been handed to onOut before the call returns
	}
	if r.err != nil {
		return r.err
	}
	if result != nil {
		if err := json.Unmarshal(r.result, result); err != nil {
			return newError(CodeBridgeProtocol, method, err, "the bridge's result does not have the expected shape: %v: %s",
				err, errString(r.result, 200))
		}
	}
	return nil
}

// sendCancel asks the bridge to stop request id; failures are moot (the bridge is gone).
func (c *Client) sendCancel(id uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CancelGrace)
	defer cancel()
	line := []byte(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":` + strconv.FormatUint(id, 10) + "}}\n")
	_ = c.write(ctx, "$/cancelRequest", line)
}

// write sends one line with one write. ctx bounds the wait for the pipe: a bridge that stops
// reading cannot hold the caller. A line cut short makes the stream unusable, so the bridge is
// killed then.
func (c *Client) write(ctx context.Context, method string, line []byte) error {
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return newError(CodeCancelled, method, ctx.Err(), "%v (not sent)", ctx.Err())
	case <-c.dead:
		return c.Err().(*Error).forMethod(method)
	}
	defer func() { <-c.writeSem }()
	deadline, _ := ctx.Deadline() // zero: no deadline
	_ = c.stdin.SetWriteDeadline(deadline)
	if done := ctx.Done(); done != nil {
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			select {
			case <-done:
				_ = c.stdin.SetWriteDeadline(time.Unix(1, 0))
			case <-stop:
			}
		}()
		// The watcher must be gone before the next writer sets its own deadline.
		defer func() { close(stop); <-stopped }()
	}
	n, err := c.stdin.Write(line)
	if err == nil {
		return nil
	}
	// A deadline error is ctx's, even when ctx's own timer has not marked it done yet (the pipe's
	// deadline can pass first, or be past already when set).
	var cause error
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cause = ctx.Err(); cause == nil {
			cause = context.DeadlineExceeded
		}
	}
	if n > 0 {
		e := newError(CodeBridgeProtocol, method, err, "a request to the bridge was cut short after %d of %d bytes (%v); "+
			"the bridge was stopped", n, len(line), err)
		c.fail(e)
		if cause != nil {
			return newError(CodeCancelled, method, cause, "%v (sent in part; the bridge was stopped)", cause)
		}
		return e
	}
	if cause != nil {
		return newError(CodeCancelled, method, cause, "%v (not sent)", cause)
	}
	// The pipe is broken: the bridge is gone. Its exit status and stderr say more, shortly.
	select {
	case <-c.dead:
		return c.Err().(*Error).forMethod(method)
	case <-time.After(3 * time.Second):
		return newError(CodeBridgeExited, method, err, "could not write to the bridge (pid %d): %v", c.Pid(), err).withTail(c)
	}
}

// handleLine routes one line from the bridge; false means the bridge broke the protocol and the
// client has given up on it.
func (c *Client) handleLine(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(bytes.TrimSpace(line)) == 0 {
		return true
	}
	var msg wireMessage
	if err := json.Unmarshal(line, &msg); err != nil || msg.JSONRPC != "2.0" {
		c.fail(newError(CodeBridgeProtocol, "", err,
			"the bridge wrote a line that is not a JSON-RPC 2.0 message: %s", errString(line, 200)))
		return false
	}
	if msg.Method != "" {
		if msg.Method == "exec/output" && len(msg.ID) == 0 {
			c.dispatchOutput(msg.Params)
		}
		return true // other notifications carry nothing a sandbox call waits for
	}
	id, err := strconv.ParseUint(string(msg.ID), 10, 64)
	if err != nil {
		// id null: the answer to a line the bridge could not read. Ours are all well-formed and
		// within the limit, so nothing waits for it.
		return true
	}
	c.mu.Lock()
	p := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if p == nil {
		return true // a call that was given up
	}
	switch {
	case msg.Error != nil:
		p.finish(nil, fromWire(p.method, msg.Error))
	case len(msg.Result) > 0:
		p.finish(msg.Result, nil)
	default:
		p.finish(nil, newError(CodeBridgeProtocol, p.method, nil,
			"the bridge answered with neither result nor error: %s", errString(line, 200)))
	}
	return true
}

// dispatchOutput hands an exec/output notification to the streaming call it belongs to. It
// waits while that call's callback is behind: backpressure, not memory.
func (c *Client) dispatchOutput(raw json.RawMessage) {
	var n struct {
		OutputChunk
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(raw, &n) != nil {
		return
	}
	id, err := strconv.ParseUint(string(n.RequestID), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	p := c.pending[id]
	c.mu.Unlock()
	if p == nil || p.out == nil {
		return
	}
	select {
	case p.out <- n.OutputChunk:
	case <-p.stop:
	}
}

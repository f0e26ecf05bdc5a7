package daggersandbox

// errors_test.go: how bridge error objects become *Error, and what errors.Is matches.

import (
	"context"
	"errors"
	"testing"
)

func TestErrorsFromTheWire(t *testing.T) {
	cases := []struct {
		name      string
		wire      wireError
		code      string
		matches   []error
		nomatches []error
	}{
		{"sandbox error", wireError{-32000, "sandbox sbx-1: file not found: a", []byte(`{"code":"NOT_FOUND"}`)},
			CodeNotFound, []error{ErrNotFound}, []error{ErrTimeout, ErrClosed, context.DeadlineExceeded}},
		{"timeout with partial", wireError{-32000, "timed out", []byte(`{"code":"TIMEOUT","partial":{"exitCode":-1,"stdout":"started\n","stderr":"","durationMs":1003}}`)},
			CodeTimeout, []error{ErrTimeout, context.DeadlineExceeded}, []error{ErrCancelled, context.Canceled}},
		{"cancelled", wireError{-32800, "request 3 was cancelled", []byte(`{"code":"CANCELLED"}`)},
			CodeCancelled, []error{ErrCancelled}, []error{ErrTimeout}},
		{"cancelled without data", wireError{-32800, "cancelled", nil}, CodeCancelled, []error{ErrCancelled}, nil},
		{"unknown param", wireError{-32602, "invalid params: unknown field `nope`", nil},
			CodeRejected, []error{ErrRejected, ErrInvalidArgument}, []error{ErrNotFound}},
		{"unknown method", wireError{-32601, "method not found: x", []byte(`{"method":"x"}`)},
			CodeRejected, []error{ErrRejected}, []error{ErrInvalidArgument}},
		{"sandbox error, data of an unknown shape", wireError{-32000, "odd", []byte(`[1,2]`)},
			CodeEngineError, []error{ErrEngineError}, nil},
	}
	for _, tc := range cases {
		e := fromWire("sandbox/x", &tc.wire)
		if e.Code != tc.code || e.RPCCode != tc.wire.Code || e.Method != "sandbox/x" {
			t.Errorf("%s: got %+v", tc.name, e)
		}
		var err error = e
		for _, m := range tc.matches {
			if !errors.Is(err, m) {
				t.Errorf("%s: errors.Is(%v, %v) = false", tc.name, err, m)
			}
		}
		for _, m := range tc.nomatches {
			if errors.Is(err, m) {
				t.Errorf("%s: errors.Is(%v, %v) = true", tc.name, err, m)
			}
		}
	}
	e := fromWire("sandbox/exec", &cases[1].wire)
	if e.Partial == nil || e.Partial.Stdout != "started\n" || e.Partial.ExitCode != -1 || e.Partial.Duration.Milliseconds() != 1003 {
		t.Errorf("partial output: %+v", e.Partial)
	}
	wrapped := newError(CodeCancelled, "sandbox/exec", context.Canceled, "cancelled")
	if !errors.Is(wrapped, context.Canceled) || !errors.Is(wrapped, ErrCancelled) || errors.Is(wrapped, context.DeadlineExceeded) {
		t.Errorf("a cancelled call should match its context's error and ErrCancelled only")
	}
}

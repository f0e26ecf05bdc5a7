package daggersandbox

// errors.go: the one error type of the client, its stable codes and the sentinels errors.Is uses.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Stable codes of sandbox operations, as the bridge sends them in data.code (docs/bridge-protocol.md).
const (
	CodeEngineUnavailable = "ENGINE_UNAVAILABLE"
	CodeTimeout           = "TIMEOUT"
	CodeNotFound          = "NOT_FOUND"
	CodeRestrictedPath    = "RESTRICTED_PATH"
	CodeInvalidPath       = "INVALID_PATH"
	CodeInvalidArgument   = "INVALID_ARGUMENT"
	CodeClosed            = "CLOSED"
	CodeCancelled         = "CANCELLED"
	CodeEngineError       = "ENGINE_ERROR"
	CodeIOError           = "IO_ERROR"
	CodeStopped           = "STOPPED"
)

// Codes of what went wrong with the bridge process itself; these never come from the bridge.
const (
	// CodeBridgeNotFound: no bridge binary at any of the places looked at.
	CodeBridgeNotFound = "BRIDGE_NOT_FOUND"
	// CodeBridgeStart: the binary could not be started, or did not complete initialize.
	CodeBridgeStart = "BRIDGE_START"
	// CodeBridgeExited: the bridge exited (or closed its stdout) while a call needed it.
	CodeBridgeExited = "BRIDGE_EXITED"
	// CodeBridgeProtocol: the bridge wrote something that is not the protocol (garbage).
	CodeBridgeProtocol = "BRIDGE_PROTOCOL"
	// CodeBridgeUnresponsive: a cancelled call got no answer within ClientOptions.CancelGrace.
	CodeBridgeUnresponsive = "BRIDGE_UNRESPONSIVE"
	// CodeRejected: the bridge refused the request itself (JSON-RPC -32700/-32600/-32601/-32602/
	// -32002/-32603): a client/bridge version mismatch or a bug, never a sandbox failure.
	CodeRejected = "REJECTED"
)

// JSON-RPC error codes of the bridge.
const (
	rpcSandboxError = -32000
	rpcCancelled    = -32800
	rpcInvalidParam = -32602
)

// Error is every failure this package returns: a stable Code plus what the bridge said.
type Error struct {
	// Code is the stable code: one of the Code* constants.
	Code string
	// Message says what failed, as the bridge (or the client) put it.
	Message string
	// Method is the bridge method of the failed call ("sandbox/exec", ...), if any.
	Method string
	// RPCCode is the JSON-RPC error code the bridge answered with; 0 if the error is the client's.
	RPCCode int
	// Partial is what a timed-out command printed before it was killed (Code TIMEOUT).
	Partial *ExecResult
	// StderrTail is the end of the bridge's stderr, for failures of the bridge process.
	StderrTail string
	// ExitStatus is the bridge's exit status (-1 if killed by a signal) for CodeBridgeExited.
	ExitStatus *int

	cause error
}

// Error renders the code, the method and the message, then the bridge's stderr tail if kept.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("daggersandbox: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	b.WriteString(" [")
	b.WriteString(e.Code)
	b.WriteString("]")
	if e.StderrTail != "" {
		b.WriteString("; bridge stderr (last lines):\n")
		b.WriteString(e.StderrTail)
	}
	return b.String()
}

// Unwrap returns the underlying cause: ctx.Err() for a cancelled call, an os error for a failed
// start, nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrXxx) true for the sentinel of e.Code, and a TIMEOUT match
// context.DeadlineExceeded too.
func (e *Error) Is(target error) bool {
	if s, ok := target.(*sentinel); ok {
		if s.code == e.Code {
			return true
		}
		// A refused params object names a value that is not acceptable.
		return s.code == CodeInvalidArgument && e.Code == CodeRejected && e.RPCCode == rpcInvalidParam
	}
	return target == context.DeadlineExceeded && e.Code == CodeTimeout
}

// sentinel is the type of the ErrXxx values: it matches any *Error of its code.
type sentinel struct{ code string }

func (s *sentinel) Error() string { return "daggersandbox: " + s.code }

// Sentinels for errors.Is, one per stable code.
var (
	// ErrEngineUnavailable: no engine for the requested backend could be reached.
	ErrEngineUnavailable error = &sentinel{CodeEngineUnavailable}
	// ErrTimeout: a command or operation ran past its deadline (it was killed).
	ErrTimeout error = &sentinel{CodeTimeout}
	// ErrNotFound: a file, directory, sandbox or image does not exist.
	ErrNotFound error = &sentinel{CodeNotFound}
	// ErrRestrictedPath: a write or delete matched one of the sandbox's restricted paths.
	ErrRestrictedPath error = &sentinel{CodeRestrictedPath}
	// ErrInvalidPath: a path is malformed or would leave the sandbox.
	ErrInvalidPath error = &sentinel{CodeInvalidPath}
	// ErrInvalidArgument: an argument or config value is not acceptable.
	ErrInvalidArgument error = &sentinel{CodeInvalidArgument}
	// ErrClosed: the sandbox (or its client) was closed before or during the call.
	ErrClosed error = &sentinel{CodeClosed}
	// ErrCancelled: the call's context ended and the bridge stopped the call.
	ErrCancelled error = &sentinel{CodeCancelled}
	// ErrEngineError: the engine refused or failed the operation.
	ErrEngineError error = &sentinel{CodeEngineError}
	// ErrIOError: a host-side read or write failed.
	ErrIOError error = &sentinel{CodeIOError}
	// ErrStopped: the sandbox is stopped (files kept, nothing running); Resume it first.
	ErrStopped error = &sentinel{CodeStopped}
	// ErrBridgeNotFound: no bridge binary was found.
	ErrBridgeNotFound error = &sentinel{CodeBridgeNotFound}
	// ErrBridgeStart: the bridge could not be started or initialized.
	ErrBridgeStart error = &sentinel{CodeBridgeStart}
	// ErrBridgeExited: the bridge process exited while it was needed.
	ErrBridgeExited error = &sentinel{CodeBridgeExited}
	// ErrBridgeProtocol: the bridge wrote something that is not the protocol.
	ErrBridgeProtocol error = &sentinel{CodeBridgeProtocol}
	// ErrBridgeUnresponsive: a cancelled call got no answer in time.
	ErrBridgeUnresponsive error = &sentinel{CodeBridgeUnresponsive}
	// ErrRejected: the bridge refused the request as malformed.
	ErrRejected error = &sentinel{CodeRejected}
)

// wireError is a JSON-RPC error object as the bridge writes it.
type wireError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// fromWire turns an error response into an *Error, keeping the stable code and partial output.
func fromWire(method string, w *wireError) *Error {
	e := &Error{Method: method, RPCCode: w.Code, Message: w.Message}
	var data struct {
		Code    string      `json:"code"`
		Partial *wireResult `json:"partial"`
	}
	if len(w.Data) > 0 {
		_ = json.Unmarshal(w.Data, &data) // data is optional detail; a shape we do not know is ignored
	}
	switch {
	case data.Code != "":
		e.Code = data.Code
	case w.Code == rpcCancelled:
		e.Code = CodeCancelled
	case w.Code == rpcSandboxError:
		e.Code = CodeEngineError
	default:
		e.Code = CodeRejected
		e.Message = fmt.Sprintf("%s (JSON-RPC %d)", w.Message, w.Code)
	}
	if data.Partial != nil {
		e.Partial = data.Partial.toResult()
	}
	return e
}

// newError builds a client-side *Error.
func newError(code, method string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Method: method, Message: fmt.Sprintf(format, args...), cause: cause}
}

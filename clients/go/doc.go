// Package daggersandbox drives dagger-sandbox-bridge from Go: isolated, containerized sandboxes
// (files, commands, forks, exports) behind the API Go services already code against.
//
// A sandbox is made with NewDaggerSandbox and freed with Close:
//
//	sb, err := daggersandbox.NewDaggerSandbox(ctx, daggersandbox.Config{Backend: "docker"})
//	if err != nil { ... }
//	defer sb.Close()
//	res, err := sb.Exec(ctx, "npm test") // a non-zero exit is a result, not an error
//
// # One bridge for many sandboxes
//
// Every sandbox lives in a dagger-sandbox-bridge process. NewDaggerSandbox shares one bridge per
// bridge path among all the sandboxes (and goroutines) of the program: the first sandbox starts
// it, and the Close of the last one (forks included) shuts it down. For explicit control, start a
// Client with NewClient and pass it in Config.Client (or call Client.NewSandbox): such a bridge
// lives until Client.Close, which closes every sandbox made through it.
//
// # Errors
//
// Every error this package returns is an *Error with a stable Code. errors.Is matches it against
// one exported sentinel per code (ErrNotFound, ErrTimeout, ErrClosed, ...); a sandbox timeout also
// matches context.DeadlineExceeded, and a call stopped by its context wraps ctx.Err().
//
// # Cancellation
//
// When a call's context ends, the client sends $/cancelRequest for it (a running command is
// killed) and waits up to ClientOptions.CancelGrace for the bridge to confirm, so that a
// cancelled Exec has stopped its command when it returns.
package daggersandbox

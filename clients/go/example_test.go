package daggersandbox_test

// example_test.go: the README's "From Go" code, compiled with the tests so it cannot rot.

import (
	"context"
	"errors"
	"fmt"

	daggersandbox "github.com/dagger-sandbox/dagger-sandbox/clients/go"
)

func validate(ctx context.Context) error {
	sb, err := daggersandbox.NewDaggerSandbox(ctx, daggersandbox.Config{Backend: "docker", ExecuteTimeout: 300})
	if err != nil {
		return err
	}
	defer sb.Close()
	sb.WithEnv("CI", "1")
	if err := sb.WriteFiles(ctx, map[string]string{"package.json": "{}", "a.test.js": "require('node:test')('ok', () => {})"}); err != nil {
		return err
	}
	res, err := sb.ExecWithTimeout(ctx, "node --test", daggersandbox.OnOutput(func(o daggersandbox.OutputChunk) { fmt.Print(o.Data) }))
	if err != nil { // errors.Is(err, context.DeadlineExceeded) when killed at ExecuteTimeout
		return err
	}
	fmt.Println(res.ExitCode) // a failing test is a result, not an error
	return nil
}

// Validating a generated project: write it, run its tests, read the verdict.
func Example() {
	if err := validate(context.Background()); err != nil {
		var e *daggersandbox.Error
		if errors.As(err, &e) {
			fmt.Println(e.Code, e.Message)
		}
	}
}

// Telling failures apart with errors.Is.
func ExampleError() {
	ctx := context.Background()
	sb, err := daggersandbox.NewDaggerSandbox(ctx, daggersandbox.Config{})
	if err != nil {
		return
	}
	defer sb.Close()
	_, err = sb.ReadFile(ctx, "missing.txt")
	switch {
	case errors.Is(err, daggersandbox.ErrNotFound):
		fmt.Println("no such file")
	case errors.Is(err, daggersandbox.ErrBridgeExited):
		fmt.Println("the bridge died:", err) // its stderr tail is in the message
	}
}

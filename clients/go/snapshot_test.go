package daggersandbox

// snapshot_test.go: snapshots through the real bridge, on Docker and local.

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

func TestSnapshotRestoresFilesEnvAndWorkdir(t *testing.T) {
	realClient(t) // skips without Docker
	ctx := testCtx(t)
	dir := t.TempDir()
	// A bridge of its own, whose local snapshots go to this test's directory.
	c, err := NewClient(ctx, ClientOptions{Env: []string{"DAGGER_SANDBOX_SNAPSHOT_DIR=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cfg := range []Config{{Backend: "docker", Image: busybox}, {Backend: "local"}} {
		cfg.Client = c
		sb, err := c.NewSandbox(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		if err := sb.WriteFile(ctx, "a.txt", "v1"); err != nil {
			t.Fatal(err)
		}
		if err := sb.SetWorkdir(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		sb.WithEnvs(map[string]string{"MODE": "snap", "API_TOKEN": "tok-value"})
		name := fmt.Sprintf("go-%s-%d", cfg.Backend, os.Getpid())
		snap, err := sb.Snapshot(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Name != name || snap.Backend != cfg.Backend || snap.Workdir != "/workspace/app" || snap.Env["MODE"] != "snap" {
			t.Fatalf("unexpected snapshot %+v", snap)
		}
		if _, kept := snap.Env["API_TOKEN"]; kept || len(snap.SecretEnv) != 1 || snap.SecretEnv[0] != "API_TOKEN" {
			t.Fatalf("a secret value was kept or its name lost: %+v", snap)
		}
		if err := sb.WriteFile(ctx, "/workspace/a.txt", "v2"); err != nil {
			t.Fatal(err)
		}

		restored, err := NewDaggerSandboxFromSnapshot(ctx, name, Config{Client: c, Settings: map[string]any{"env": map[string]string{"API_TOKEN": "again"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer restored.Close()
		if got, _ := restored.ReadFile(ctx, "/workspace/a.txt"); got != "v1" {
			t.Fatalf("restored a.txt = %q, want v1", got)
		}
		r, err := restored.Exec(ctx, `echo "$MODE $API_TOKEN"`)
		if err != nil || r.Stdout != "snap again\n" || restored.Workdir() != "/workspace/app" {
			t.Fatalf("restored env/workdir: %+v %v %q", r, err, restored.Workdir())
		}
		all, err := c.ListSnapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range all {
			found = found || s.ID == snap.ID
		}
		if !found {
			t.Fatalf("%s not listed in %+v", snap.ID, all)
		}
		if _, err := NewDaggerSandboxFromSnapshot(ctx, name, Config{Client: c, Image: busybox}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("an image with a snapshot: %v", err)
		}
		if got, err := c.InspectSnapshot(ctx, name); err != nil || got.ID != snap.ID {
			t.Fatalf("inspect: %+v %v", got, err)
		}
		if gone, err := c.DeleteSnapshot(ctx, snap.ID); err != nil || gone.ID != snap.ID {
			t.Fatalf("delete: %+v %v", gone, err)
		}
		if _, err := c.InspectSnapshot(ctx, snap.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("inspect after delete: %v", err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left in the snapshots directory: %v", left)
	}
}

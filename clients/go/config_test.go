package daggersandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostBundle is the host's CA bundle, as the bridge's HostCA finds it.
func hostBundle() string {
	if p := os.Getenv("SSL_CERT_FILE"); p != "" {
		return p
	}
	return "/etc/ssl/certs/ca-certificates.crt"
}

func TestCACertificatesAndCachesAreTypedFields(t *testing.T) {
	realClient(t) // skips (or fails) without Docker
	ctx := testCtx(t)
	// A cache namespace of its own, so the test's volume is not the user's npm cache.
	ns := fmt.Sprintf("gotest%d", os.Getpid())
	volume := fmt.Sprintf("dagger-sandbox-cache-%d-%s-npm", os.Getuid(), ns)
	c, err := NewClient(ctx, ClientOptions{Env: []string{"DAGGER_SANDBOX_CACHE_NAMESPACE=" + ns}})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = exec.Command("docker", "volume", "rm", "-f", volume).Run()
	})

	sb := newBox(t, Config{Client: c, CACertificates: []string{HostCA}, Caches: []string{"npm"}})
	res, err := sb.Exec(ctx, `head -n 1 "$NODE_EXTRA_CA_CERTS"; echo "$npm_config_cache"; test -d "$npm_config_cache" && echo mounted`)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if res.Stdout != "-----BEGIN CERTIFICATE-----\n/var/cache/dagger-sandbox/npm\nmounted\n" {
		t.Fatalf("HostCA and the npm cache: %q (stderr %q)", res.Stdout, res.Stderr)
	}
	if out, err := exec.Command("docker", "volume", "inspect", volume).CombinedOutput(); err != nil {
		t.Fatalf("the npm cache volume %s was not made: %v %s", volume, err, out)
	}

	// A PEM file by path, relative to BaseDir; an empty Caches mounts none.
	bundle := hostBundle()
	sb = newBox(t, Config{Client: c, BaseDir: filepath.Dir(bundle), CACertificates: []string{filepath.Base(bundle)}, Caches: []string{}})
	res, err = sb.Exec(ctx, `head -n 1 "$NODE_EXTRA_CA_CERTS"; echo "cache=$npm_config_cache"`)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if res.Stdout != "-----BEGIN CERTIFICATE-----\ncache=\n" {
		t.Fatalf("a CA path and no caches: %q (stderr %q)", res.Stdout, res.Stderr)
	}

	// Bad values are ErrInvalidArgument and make no sandbox.
	for name, cfg := range map[string]Config{
		"a missing CA file":       {CACertificates: []string{filepath.Join(t.TempDir(), "missing.pem")}},
		"HostCA mixed with paths": {CACertificates: []string{HostCA, bundle}},
		"an unknown cache":        {Caches: []string{"maven"}},
	} {
		cfg.Client, cfg.Backend, cfg.Image = c, "docker", busybox
		_, err := NewDaggerSandbox(ctx, cfg)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: want ErrInvalidArgument, got %v", name, err)
		}
		install := ""
		test := "true"
		dir := t.TempDir()
		if _, err := ValidateProject(ctx, cfg, dir, ValidateOptions{Install: &install, Test: &test}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s in ValidateProject: want ErrInvalidArgument, got %v", name, err)
		} else if name == "an unknown cache" && !strings.Contains(err.Error(), "maven") {
			t.Errorf("the error names the cache: %v", err)
		}
	}
}

package daggersandbox

// files.go: file and directory operations of a sandbox, and moving directories to and from the host.

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"sort"
)

// WriteFile writes text to path (relative to the workdir, or absolute), creating parent
// directories.
func (s *DaggerSandbox) WriteFile(ctx context.Context, path, content string) error {
	return s.call(ctx, "sandbox/writeFile", map[string]any{"path": path, "content": content}, nil)
}

// WriteFileBytes writes bytes to path; they travel as base64.
func (s *DaggerSandbox) WriteFileBytes(ctx context.Context, path string, content []byte) error {
	return s.call(ctx, "sandbox/writeFile", map[string]any{
		"path": path, "content": base64.StdEncoding.EncodeToString(content), "encoding": "base64",
	}, nil)
}

// WriteFiles writes every file in one round trip; if any path is invalid or restricted, none is
// written.
func (s *DaggerSandbox) WriteFiles(ctx context.Context, files map[string]string) error {
	list := make([]map[string]string, 0, len(files))
	for _, p := range sortedKeys(files) {
		list = append(list, map[string]string{"path": p, "content": files[p]})
	}
	return s.call(ctx, "sandbox/writeFiles", map[string]any{"files": list}, nil)
}

// WriteFilesBytes is WriteFiles for bytes.
func (s *DaggerSandbox) WriteFilesBytes(ctx context.Context, files map[string][]byte) error {
	list := make([]map[string]string, 0, len(files))
	for p, content := range files {
		list = append(list, map[string]string{
			"path": p, "content": base64.StdEncoding.EncodeToString(content), "encoding": "base64",
		})
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["path"] < list[j]["path"] })
	return s.call(ctx, "sandbox/writeFiles", map[string]any{"files": list}, nil)
}

type readResult struct {
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
}

// ReadFile reads a text file. A file that is not UTF-8 fails with ErrInvalidArgument: read it
// with ReadFileBytes.
func (s *DaggerSandbox) ReadFile(ctx context.Context, path string) (string, error) {
	var r readResult
	if err := s.call(ctx, "sandbox/readFile", map[string]any{"path": path}, &r); err != nil {
		return "", err
	}
	return r.Content, nil
}

// ReadFileBytes reads any file as bytes (they travel as base64).
func (s *DaggerSandbox) ReadFileBytes(ctx context.Context, path string) ([]byte, error) {
	var r readResult
	if err := s.call(ctx, "sandbox/readFile", map[string]any{"path": path, "encoding": "base64"}, &r); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(r.Content)
	if err != nil {
		return nil, newError(CodeBridgeProtocol, "sandbox/readFile", err, "the bridge sent content that is not base64: %v", err)
	}
	return b, nil
}

// DeleteFile deletes a file, or a directory with everything in it; a missing path is ErrNotFound.
func (s *DaggerSandbox) DeleteFile(ctx context.Context, path string) error {
	return s.call(ctx, "sandbox/deleteFile", map[string]any{"path": path}, nil)
}

// ListDirectory lists path ("" or "." is the workdir), sorted by name.
func (s *DaggerSandbox) ListDirectory(ctx context.Context, path string) ([]DirEntry, error) {
	params := map[string]any{}
	if path != "" {
		params["path"] = path
	}
	var r struct {
		Entries []DirEntry `json:"entries"`
	}
	if err := s.call(ctx, "sandbox/listDirectory", params, &r); err != nil {
		return nil, err
	}
	for i := range r.Entries {
		r.Entries[i].IsDir = r.Entries[i].Kind == "dir"
	}
	if r.Entries == nil {
		r.Entries = []DirEntry{}
	}
	return r.Entries, nil
}

// ExportDirectory copies containerPath out to hostPath (created if missing; relative to
// Config.BaseDir when relative).
func (s *DaggerSandbox) ExportDirectory(ctx context.Context, containerPath, hostPath string) error {
	return s.call(ctx, "sandbox/exportDirectory", map[string]any{
		"containerPath": containerPath, "hostPath": s.hostPath(hostPath),
	}, nil)
}

// RefreshFromHost copies the host directory hostPath (relative to Config.BaseDir when relative)
// into containerPath. exclude lists globs to leave out: a name such as "node_modules" matches at
// any depth, a pattern with "/" matches from hostPath.
func (s *DaggerSandbox) RefreshFromHost(ctx context.Context, hostPath, containerPath string, exclude ...string) error {
	params := map[string]any{"hostPath": s.hostPath(hostPath), "containerPath": containerPath}
	if len(exclude) > 0 {
		params["exclude"] = exclude
	}
	return s.call(ctx, "sandbox/refreshFromHost", params, nil)
}

// hostPath resolves a relative host path against BaseDir, else the process's directory (the
// bridge is a child process, but its directory is not this package's to rely on).
func (s *DaggerSandbox) hostPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if s.baseDir != "" {
		return filepath.Join(s.baseDir, p)
	}
	return absolute(p)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// build is the binary Build made for this process.
var build struct {
	mu   sync.Mutex // guards the fields below
	done bool
	dir  string
	path string
	err  error
}

// Build builds the gossipchain command of this module once per process
// (with the race detector if this process has it) and returns its path.
// Later calls return the same binary, or the same error.
func Build() (string, error) {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.done {
		return build.path, build.err
	}
	build.done = true
	build.path, build.err = buildOnce()
	return build.path, build.err
}

func buildOnce() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if build.dir, err = os.MkdirTemp("", "gossipchain-harness-"); err != nil {
		return "", fmt.Errorf("build gossipchain: %w", err)
	}
	bin := filepath.Join(build.dir, "gossipchain")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gossipchain in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of go.mod: two up from this file, or,
// in a build without source paths (-trimpath), where the go command says.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("find the module root: not inside the gossipchain module")
	}
	return filepath.Dir(mod), nil
}

// Binary is Build for a test: it fails tb if the build fails.
func Binary(tb TB) string {
	tb.Helper()
	bin, err := Build()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return bin
}

// Main runs a test package's tests, then removes the binary Build made
// (the tests' nodes are gone by then: their cleanups have run). Use it
// from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m interface{ Run() int }) int {
	code := m.Run()
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	build.done, build.dir, build.path, build.err = false, "", "", nil
	return code
}

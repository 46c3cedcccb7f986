package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gossipchain/internal/harness"
	"gossipchain/node"
)

// What an operator uses: the version, configuration from the environment,
// the log's format and level, the metrics port.

// version returns the version the built binary reports: the first line of
// gossipchain version, without "gossipchain ".
func version(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), "version").Output()
	if err != nil {
		t.Fatalf("gossipchain version: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(first, "gossipchain ")
	if !ok {
		t.Fatalf("gossipchain version: first line %q", first)
	}
	return v
}

// gossipchain version and --version print the build; a node tells its
// peers gossipchain/<that version>, and GET /peers lists it.
func TestVersion(t *testing.T) {
	bin := harness.Binary(t)
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}, {"--version", "--port", "99999"}} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("%v: %v, stderr %q", args, err, stderr.String())
		}
		outs = append(outs, stdout.String())
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Errorf("gossipchain version and --version differ:\n%s\n%s\n%s", outs[0], outs[1], outs[2])
	}
	lines := strings.Split(strings.TrimSpace(outs[0]), "\n")
	if len(lines) != 3 ||
		!regexp.MustCompile(`^gossipchain (v\d+\.\d+\.\d+\S*|devel(-[0-9a-f]{12})?(-dirty)?)$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^commit ([0-9a-f]{40} of \S+, (clean|modified)|unknown \(built without VCS information\))$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], "go1.") {
		t.Errorf("gossipchain version:\n%s", outs[0])
	}

	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	want := "gossipchain/" + version(t)
	var peers []node.PeerInfo
	waitFor(t, 10*time.Second, "a to list b's agent", func() bool {
		a.get(t, "/peers", &peers)
		return len(peers) == 1 && peers[0].ID == b.status(t).ID && peers[0].Agent == want
	}, func() string { return fmt.Sprintf("peers %+v", peers) })
}

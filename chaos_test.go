package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChaos runs the chaos command through the cluster script with a fixed
// seed, briefly: faults, then the checker's verdict. The schedule and the
// checker have tests of their own in internal/chaos.
func TestChaos(t *testing.T) {
	state := t.TempDir()
	cmd := exec.Command("bash", "scripts/cluster.sh", "chaos", "--seed", "7", "--duration", "15s", "--nodes", "4", "--dir", filepath.Join(state, "chaos"))
	cmd.Env = append(os.Environ(), "GOSSIPCHAIN_CLUSTER_DIR="+state)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chaos: ok: seed 7") {
		t.Fatalf("chaos: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

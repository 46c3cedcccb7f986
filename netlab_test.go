package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
)

// TestNetlab runs scripts/netlab.sh as a user would: four machines (network
// namespaces with their own addresses, one node each, node 1 the only
// bootstrap), a line typed on each, one machine cut off while both sides
// type, the link restored, and every node on one chain holding every line
// once. It needs root and network namespaces; without them it is skipped.
func TestNetlab(t *testing.T) {
	prefix := fmt.Sprintf("gct%d", os.Getpid()%100000)
	if os.Geteuid() != 0 {
		t.Skip("netlab skipped: needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netlab skipped: no ip command (iproute2)")
	}
	if out, err := exec.Command("ip", "netns", "add", prefix+"-probe").CombinedOutput(); err != nil {
		t.Skipf("netlab skipped: can't create a network namespace: %s", strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", prefix+"-probe").Run()

	state := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{"scripts/netlab.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "GOSSIPCHAIN_NETLAB_PREFIX="+prefix, "GOSSIPCHAIN_NETLAB_DIR="+state)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("netlab %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if out, err := run("down"); err != nil {
			t.Errorf("netlab down: %v\n%s", err, out)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), prefix+"-") {
			t.Errorf("namespaces left after down:\n%s", out)
		}
		if left := processesUnder(state); len(left) > 0 {
			t.Errorf("processes left after down:\n%s", strings.Join(left, "\n"))
		}
	})
	must("up", "4")
	var lines []string
	for k := 1; k <= 4; k++ {
		line := fmt.Sprintf("typed on machine %d", k)
		must("send", fmt.Sprint(k), line)
		lines = append(lines, line)
	}
	must("status", "--wait", "30")

	must("cut", "4")
	must("send", "1", "while 4 is cut off")
	must("send", "4", "on 4, alone")
	lines = append(lines, "while 4 is cut off", "on 4, alone")
	waitFor(t, 20*time.Second, "the two sides on different heads", func() bool {
		_, err := run("status")
		return err != nil
	})
	must("restore", "4")
	must("status", "--wait", "60")

	var chain []ledger.Block
	if err := json.Unmarshal([]byte(must("chain", "2")), &chain); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, b := range chain[1:] {
		count[b.Data]++
	}
	for _, l := range lines {
		if count[l] != 1 {
			t.Errorf("line %q on the chain %d times, want once", l, count[l])
		}
	}
	if len(chain) != len(lines)+1 {
		t.Errorf("chain has %d blocks, want %d", len(chain), len(lines)+1)
	}
}

// processesUnder lists the running processes whose command line names dir
// (zombies have none).
func processesUnder(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), dir) {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return out
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gossipchain/internal/harness"
	"gossipchain/ledger"
	"gossipchain/node"
)

// TestNetlab runs scripts/netlab.sh as a user would: four machines (network
// namespaces with their own addresses, one node each, node 1 the only
// bootstrap), a line typed on each, one machine cut off while both sides
// type, the link restored, and every node on one chain holding every line
// once. It needs root and network namespaces; without them it is skipped.
func TestNetlab(t *testing.T) {
	run, must := netlab(t)
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

// TestLAN: two machines on one bridge, their nodes given no --peer
// (scripts/netlab.sh lan-up): they find each other by mDNS, and a line
// typed on one reaches the other within 15 s of their start.
func TestLAN(t *testing.T) {
	run, must := netlab(t)
	must("lan-up", "2")
	start := time.Now()
	must("send", "1", "found on the LAN")
	waitFor(t, 15*time.Second, "the line on machine 2", func() bool {
		var chain []ledger.Block
		out, err := run("chain", "2")
		return err == nil && json.Unmarshal([]byte(out), &chain) == nil && len(chain) == 2 && chain[1].Data == "found on the LAN"
	})
	t.Logf("machine 2 had the line %.1fs after both nodes were ready", time.Since(start).Seconds())
}

// netlab skips t unless it can run scripts/netlab.sh (root, iproute2,
// network namespaces; nftables too if nft is set), and returns functions
// that run it on a lab of t's own: run returns its output and error, must
// fails t on an error. The lab is torn down when t ends, and t fails if a
// namespace or a process is left.
func netlab(t *testing.T, need ...string) (run func(args ...string) (string, error), must func(args ...string) string) {
	t.Helper()
	prefix := fmt.Sprintf("gct%d", os.Getpid()%100000)
	if os.Geteuid() != 0 {
		t.Skip("netlab skipped: needs root for network namespaces")
	}
	for _, cmd := range append([]string{"ip"}, need...) {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("netlab skipped: no %s command (apt-get install iproute2 nftables)", cmd)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", prefix+"-probe").CombinedOutput(); err != nil {
		t.Skipf("netlab skipped: can't create a network namespace: %s", strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", prefix+"-probe").Run()

	state := t.TempDir()
	run = func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{"scripts/netlab.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "GOSSIPCHAIN_NETLAB_PREFIX="+prefix, "GOSSIPCHAIN_NETLAB_DIR="+state)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must = func(args ...string) string {
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
	return run, must
}

// TestNATLab runs the NAT lab (scripts/netlab.sh nat-up): a public node
// and two homes, each behind its own masquerading router that filters as
// home routers do, given only the public node's address. The homes must
// end up directly connected (not relayed) within 60 s, and once the
// public node is killed, a line typed at each home must reach the other.
// It needs root, network namespaces and nftables; without them it is
// skipped. GOSSIPCHAIN_NATLAB_RUNS=10 repeats it and logs the figures
// (docs/BENCHMARKS.md, "Behind NAT"); GOSSIPCHAIN_NATLAB_PEER=quic gives
// the homes the public node's QUIC address instead of its first (TCP).
func TestNATLab(t *testing.T) {
	run, must := netlab(t, "nft")
	runs := 1
	if v := os.Getenv("GOSSIPCHAIN_NATLAB_RUNS"); v != "" {
		var err error
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("GOSSIPCHAIN_NATLAB_RUNS=%q: want a number of runs", v)
		}
	}
	via := "tcp"
	if v := os.Getenv("GOSSIPCHAIN_NATLAB_PEER"); v != "" {
		via = v
	}
	var times []time.Duration
	relayed := 0
	for i := range runs {
		d, ok := natLabRun(t, i, via, run, must)
		if ok {
			times = append(times, d)
		} else {
			relayed++
		}
		must("down")
	}
	slices.Sort(times)
	t.Logf("NAT lab, homes given the public node's %s address, %d runs: %d directly connected, %d relayed the whole 60 s", via, runs, len(times), relayed)
	for _, p := range natLabPhases {
		t.Logf("  %s", p)
	}
	if len(times) > 0 {
		t.Logf("  time to a direct connection: min %.1fs, median %.1fs, max %.1fs (from the homes' start, polled every 0.25 s)",
			times[0].Seconds(), times[len(times)/2].Seconds(), times[len(times)-1].Seconds())
	}
}

// natLabPhases collects, per run, when the phases of a NAT lab run were
// first seen.
var natLabPhases []string

// natLabRun is one run of TestNATLab: it returns how long the homes took
// to connect directly, and whether they did within 60 s.
func natLabRun(t *testing.T, i int, via string, run func(...string) (string, error), must func(...string) string) (time.Duration, bool) {
	must("nat-up", "2", via)
	start := time.Now()
	ids := map[string]string{}
	for _, h := range []string{"h1", "h2", "pub"} {
		var s harness.Status
		if err := json.Unmarshal([]byte(must("api", h, "/status")), &s); err != nil {
			t.Fatal(err)
		}
		ids[h] = s.ID
	}
	// link returns the kinds of h's connections to other ("" if none),
	// and h's reachability.
	link := func(h, other string) (kinds []string, reach string) {
		var peers []node.PeerInfo
		if out, err := run("api", h, "/peers"); err == nil {
			json.Unmarshal([]byte(out), &peers)
		}
		for _, p := range peers {
			if p.ID != ids[other] {
				continue
			}
			for _, c := range p.Conns {
				k := c.Kind + " " + c.Transport
				if c.HolePunched {
					k += " hole-punched"
				}
				kinds = append(kinds, k)
			}
		}
		var s harness.Status
		if out, err := run("api", h, "/status"); err == nil {
			json.Unmarshal([]byte(out), &s)
		}
		return kinds, s.Reachability
	}
	var private, relayed, direct time.Duration
	deadline := start.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		k1, r1 := link("h1", "h2")
		k2, r2 := link("h2", "h1")
		at := time.Since(start)
		if private == 0 && r1 == node.ReachabilityPrivate && r2 == node.ReachabilityPrivate {
			private = at
		}
		all := strings.Join(append(k1, k2...), ",")
		if relayed == 0 && strings.Contains(all, node.ConnRelayed) {
			relayed = at
		}
		if slices.ContainsFunc(k1, isDirect) && slices.ContainsFunc(k2, isDirect) {
			direct = at
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	phase := fmt.Sprintf("run %d: both homes private at %.1fs, first relayed connection at %.1fs, ", i+1, private.Seconds(), relayed.Seconds())
	if direct == 0 {
		k, _ := link("h1", "h2")
		natLabPhases = append(natLabPhases, phase+"no direct connection within 60s")
		out, _ := run("links")
		t.Errorf("run %d: the homes did not connect directly within 60 s (h1 -> h2: %v)\n%s", i+1, k, out)
		return 0, false
	}
	k, _ := link("h1", "h2")
	natLabPhases = append(natLabPhases, phase+fmt.Sprintf("direct at %.1fs (%s)", direct.Seconds(), strings.Join(k, ", ")))

	// Lines flow through the public node, then without it.
	must("send", "h1", fmt.Sprintf("run %d: from home 1", i))
	must("send", "h2", fmt.Sprintf("run %d: from home 2", i))
	must("status", "--wait", "30")
	must("kill", "pub")
	must("send", "h1", fmt.Sprintf("run %d: home 1, public node gone", i))
	must("send", "h2", fmt.Sprintf("run %d: home 2, public node gone", i))
	want := []string{
		fmt.Sprintf("run %d: from home 1", i), fmt.Sprintf("run %d: from home 2", i),
		fmt.Sprintf("run %d: home 1, public node gone", i), fmt.Sprintf("run %d: home 2, public node gone", i),
	}
	lines := func(h string) []string {
		var chain []ledger.Block
		out, err := run("chain", h)
		if err != nil || json.Unmarshal([]byte(out), &chain) != nil {
			return nil
		}
		var got []string
		for _, b := range chain[1:] {
			got = append(got, b.Data)
		}
		slices.Sort(got)
		return got
	}
	slices.Sort(want)
	waitFor(t, 30*time.Second, "every line on both homes after the public node was killed", func() bool {
		return slices.Equal(lines("h1"), want) && slices.Equal(lines("h2"), want)
	})
	return direct, true
}

func isDirect(kind string) bool { return strings.HasPrefix(kind, node.ConnDirect) }

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

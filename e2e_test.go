package main

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gossipchain/internal/harness"
	"gossipchain/ledger"
	"gossipchain/node"

	bolt "go.etcd.io/bbolt"
)

// These tests run nodes as separate processes of the real binary
// (internal/harness builds it once), driving them as a user would: typed
// lines on stdin, the HTTP API, signals.

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// waitFor polls cond until it holds or the deadline passes; detail, if
// given, says what was seen last.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s", timeout, what)
			for _, d := range detail {
				msg += ": " + d()
			}
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is a node process whose console output the test keeps, line by
// line: what it prints for its user is what some tests check.
type proc struct {
	n     *harness.Node
	stdin io.Writer
	addr  string // its first address, to give to peers
	api   string // http://127.0.0.1:PORT
	data  string
	mu    sync.Mutex // guards lines
	lines []string   // stdout so far
}

// startProc starts a node process on data; each extra argument is a peer
// address, or a flag followed by its value.
func startProc(t testing.TB, data string, extra ...string) *proc {
	t.Helper()
	cfg := harness.Config{Data: data, Stdin: true}
	for i := 0; i < len(extra); i++ {
		if strings.HasPrefix(extra[i], "--") && i+1 < len(extra) {
			cfg.Args = append(cfg.Args, extra[i], extra[i+1])
			i++
			continue
		}
		cfg.Peers = append(cfg.Peers, extra[i])
	}
	p := &proc{data: data}
	cfg.Stdout = harness.LineFunc(func(l string) {
		p.mu.Lock()
		p.lines = append(p.lines, l)
		p.mu.Unlock()
	})
	p.n = harness.StartTB(t, cfg)
	p.stdin, p.addr, p.api = p.n.Stdin(), p.n.Addr(), p.n.API()
	return p
}

// find returns the first console line with prefix, or "".
func (p *proc) find(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) kill() { p.n.Kill() }

// stop sends SIGTERM and requires a clean exit 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.n.Signal(syscall.SIGTERM)
	select {
	case <-p.n.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("node did not stop within 15s of SIGTERM")
	}
	if code := p.n.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.n.StderrTail())
	}
}

func (p *proc) get(t testing.TB, path string, v any) {
	t.Helper()
	if err := p.n.Get(path, v); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) status(t testing.TB) node.Status {
	var s node.Status
	p.get(t, "/status", &s)
	return s
}

// chain returns the node's whole main chain.
func (p *proc) chain(t testing.TB) []ledger.Block {
	t.Helper()
	c, err := p.n.Chain()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitMeshed waits until every node is in the blocks mesh.
func waitMeshed(t testing.TB, procs ...*proc) {
	t.Helper()
	waitFor(t, 20*time.Second, "every node in the blocks mesh", func() bool {
		for _, p := range procs {
			if p.status(t).Mesh == 0 {
				return false
			}
		}
		return true
	})
}

// waitConverged waits until every node reports the same head and nothing
// pending, with a main chain that holds exactly the given lines, each once;
// then it checks that the nodes' chains are identical block by block.
func waitConverged(t *testing.T, timeout time.Duration, lines []string, procs ...*proc) {
	t.Helper()
	var last string
	waitFor(t, timeout, "every node on one chain holding every line once", func() bool {
		last = converged(t, lines, procs)
		return last == ""
	}, func() string { return last })
	sameChains(t, procs...)
}

// sameChains fails unless every node's main chain is the same, block by
// block, and returns it.
func sameChains(t *testing.T, procs ...*proc) []ledger.Block {
	t.Helper()
	ref := procs[0].chain(t)
	for _, p := range procs[1:] {
		got := p.chain(t)
		if len(got) != len(ref) {
			t.Fatalf("chain lengths differ: %d vs %d", len(got), len(ref))
		}
		for i := range ref {
			if got[i] != ref[i] {
				t.Fatalf("block %d differs between nodes:\n%+v\n%+v", i, got[i], ref[i])
			}
		}
	}
	return ref
}

// converged says why procs are not yet on one chain holding lines exactly
// once, or "" if they are.
func converged(t *testing.T, lines []string, procs []*proc) string {
	// The chain first, then every head against its tip: a line arriving
	// between the two readings shows as disagreement, not as convergence.
	ref := procs[0].chain(t)
	tip := ref[len(ref)-1].Hash
	var heads []string
	agree := true
	for _, p := range procs {
		s := p.status(t)
		heads = append(heads, fmt.Sprintf("#%d %.8s pending %d", s.Height, s.Head, s.Pending))
		agree = agree && s.Head == tip && s.Pending == 0
	}
	if !agree {
		return "heads " + strings.Join(heads, ", ")
	}
	count := map[string]int{}
	for _, b := range ref[1:] {
		count[b.Data]++
	}
	var wrong []string
	for _, l := range lines {
		if count[l] != 1 {
			wrong = append(wrong, fmt.Sprintf("%q %d times", l, count[l]))
		}
		delete(count, l)
	}
	for l, c := range count {
		wrong = append(wrong, fmt.Sprintf("unexpected %q %d times", l, c))
	}
	if len(wrong) > 0 {
		return fmt.Sprintf("%d lines wrong on the main chain (e.g. %s)", len(wrong), wrong[0])
	}
	return ""
}

func TestThreeProcessesOneChain(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), a.addr)
	procs := []*proc{a, b, c}
	waitMeshed(t, procs...)
	// Type on each console in turn; each line must reach all three.
	want := 0
	for round := 0; round < 2; round++ {
		for i, p := range procs {
			want++
			fmt.Fprintf(p.stdin, "round %d from node %d\n", round, i)
			waitFor(t, 15*time.Second, fmt.Sprintf("height %d everywhere", want), func() bool {
				for _, q := range procs {
					if q.status(t).Height != uint64(want) {
						return false
					}
				}
				return true
			})
		}
	}
	ref := sameChains(t, procs...)
	if len(ref) != want+1 {
		t.Fatalf("chain has %d blocks, want %d", len(ref), want+1)
	}
	if !strings.Contains(b.output(), "from node 0") {
		t.Errorf("node b's console did not print node a's block:\n%s", b.output())
	}

	// Restart c with its data dir: same peer ID, same chain.
	id := c.status(t).ID
	c.stop(t)
	c2 := startProc(t, c.data, a.addr)
	if s := c2.status(t); s.ID != id || s.Height != uint64(want) || s.Head != ref[want].Hash {
		t.Fatalf("after restart: id %s height %d head %s; want %s %d %s", s.ID, s.Height, s.Head, id, want, ref[want].Hash)
	}
	// And it is back in the network: once it is in the mesh again, a new
	// line reaches it. (What a node misses while down comes by sync:
	// TestKilledNodeCatchesUp.)
	waitFor(t, 20*time.Second, "the restarted node back in the mesh", func() bool {
		return c2.status(t).Mesh > 0 && a.status(t).Mesh == 2
	})
	fmt.Fprintln(b.stdin, "after restart")
	waitFor(t, 20*time.Second, "the restarted node to receive a new block", func() bool {
		return c2.status(t).Height == uint64(want+1)
	})
	for _, p := range []*proc{a, b, c2} {
		p.stop(t)
	}
}

func TestKilledNodeCatchesUp(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), a.addr)
	var lines []string
	typeLine := func(p *proc, line string) {
		fmt.Fprintln(p.stdin, line)
		lines = append(lines, line)
	}
	typeLine(c, "before the crash")
	waitConverged(t, 20*time.Second, lines, a, b, c)
	id := c.status(t).ID
	c.kill() // SIGKILL: no chance to close anything
	for i := 0; i < 20; i++ {
		typeLine([]*proc{a, b}[i%2], fmt.Sprintf("while c is down %d", i))
	}
	waitConverged(t, 20*time.Second, lines, a, b)
	c2 := startProc(t, c.data, a.addr)
	if got := c2.status(t).ID; got != id {
		t.Fatalf("peer ID changed across the crash: %s -> %s", id, got)
	}
	// Nobody types: c2 catches up by sync alone.
	waitConverged(t, 30*time.Second, lines, a, b, c2)
	for _, p := range []*proc{a, b, c2} {
		p.stop(t)
	}
}

// seedStore writes a data dir whose chain holds count blocks by a test
// author, as if the node had been running for a while.
func seedStore(t *testing.T, dir string, count int) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := ledger.Open(filepath.Join(dir, "chain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	// Timestamps end two minutes ago: history, not a flood against the
	// author budget (node/budget.go).
	parent, start := c.Head(), time.Now().Add(-2*time.Minute-time.Duration(count)*time.Millisecond)
	var run []*ledger.Block
	var lines []string
	for i := 0; i < count; i++ {
		b, err := s.Sign(parent, fmt.Sprintf("seeded %d", i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		run, parent, lines = append(run, b), b, append(lines, b.Data)
	}
	for i := 0; i < count; i += 1000 {
		if _, err := c.Add(run[i:min(count, i+1000)]...); err != nil {
			t.Fatal(err)
		}
	}
	return lines
}

func TestCrashDuringSyncAndReorg(t *testing.T) {
	// A node with three lines of its own joins a network whose chain is far
	// longer: the sync switches it to the other branch (a reorg) and makes
	// its three lines pending. It is SIGKILLed in the middle of that sync,
	// restarted, and must end on the network's chain with its three lines
	// re-appended on top, each once.
	// 100,000 blocks; under the race detector (ten times slower), 20,000.
	count := 100_000
	if raceBuild {
		count = 20_000
	}
	dir := t.TempDir()
	lines := seedStore(t, filepath.Join(dir, "src"), count)
	src := startProc(t, filepath.Join(dir, "src"))
	j := startProc(t, filepath.Join(dir, "joiner"))
	for i := 0; i < 3; i++ {
		line := fmt.Sprintf("typed on the joiner %d", i)
		fmt.Fprintln(j.stdin, line)
		lines = append(lines, line)
	}
	waitFor(t, 10*time.Second, "the joiner's own lines", func() bool { return j.status(t).Height == 3 })
	resp, err := http.Post(j.api+"/peers", "application/json", strings.NewReader(`{"addr":"`+src.addr+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, 60*time.Second, "the sync half done", func() bool { return j.status(t).Height > uint64(count/2) })
	killedAt := j.status(t)
	j.kill()
	t.Logf("killed at height %d (syncing: %v, pending %d)", killedAt.Height, killedAt.Syncing != nil, killedAt.Pending)

	j2 := startProc(t, j.data, src.addr)
	waitConverged(t, 120*time.Second, lines, src, j2)
	for _, p := range []*proc{src, j2} {
		p.stop(t)
	}
}

func TestConcurrentTyping(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), a.addr, b.addr)
	procs := []*proc{a, b, c}
	waitFor(t, 20*time.Second, "every node in the blocks mesh", func() bool {
		return a.status(t).Mesh == 2 && b.status(t).Mesh == 2 && c.status(t).Mesh == 2
	})
	// 100 lines on each console at once: the chain forks all the time, and
	// every line on a losing branch must be appended again, once.
	var lines []string
	var wg sync.WaitGroup
	for i, p := range procs {
		var text strings.Builder
		for j := 0; j < 100; j++ {
			line := fmt.Sprintf("node %d line %d", i, j)
			lines = append(lines, line)
			text.WriteString(line + "\n")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.WriteString(p.stdin, text.String())
		}()
	}
	wg.Wait()
	defer func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("stderr of %s:\n%s", p.addr, p.n.StderrTail())
			}
		}
	}()
	waitConverged(t, 60*time.Second, lines, procs...)
	for _, p := range procs {
		p.stop(t)
	}
}

func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	running := startProc(t, filepath.Join(dir, "busy"))
	port := strconv.Itoa(running.n.Port())
	if err := os.WriteFile(filepath.Join(dir, "chain.db"), []byte(strings.Repeat("x", 8192)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"bad multiaddr", []string{"--peer", "127.0.0.1:3001"}, "not a multiaddr"},
		{"peer without id", []string{"--peer", "/ip4/127.0.0.1/tcp/3001"}, "must end in /p2p/"},
		{"bad port", []string{"--port", "70000"}, "out of range"},
		{"bad QUIC port", []string{"--quic-port", "-1"}, "out of range"},
		{"bad reachability", []string{"--reachability", "maybe"}, "must be public or private"},
		{"QUIC on a private network", []string{"--port", "0", "--psk", filepath.Join(dir, "nope"), "--quic-port", "4001"}, "TCP only"},
		{"port in use", []string{"--port", port, "--data", filepath.Join(dir, "other")}, "already in use"},
		{"data dir in use", []string{"--port", "0", "--data", running.data}, "in use by another process"},
		{"corrupt store", []string{"--port", "0", "--data", dir}, "corrupt store"},
		{"missing psk file", []string{"--port", "0", "--psk", filepath.Join(dir, "nope")}, "psk file"},
		{"bad psk file", []string{"--port", "0", "--psk", filepath.Join(dir, "chain.db")}, "not a libp2p key file"},
		{"bad authors file", []string{"--port", "0", "--authors", filepath.Join(dir, "chain.db")}, "not an Ed25519 peer ID"},
		{"finality 0", []string{"--finality", "0"}, "at least 1"},
		// 192.0.2.1 is a documentation address: refused before any listen.
		{"open api without token", []string{"--port", "0", "--data", filepath.Join(dir, "api"), "--api", "192.0.2.1:0"}, "refusing to serve it without an API token"},
		{"psk with arguments", []string{"psk", "x"}, "takes no arguments"},
		{"bad listen address", []string{"--listen", "localhost:1"}, "not an IP address"},
		{"bad announce address", []string{"--announce", "127.0.0.1:1"}, "not a multiaddr"},
		{"metrics without a host", []string{"--port", "0", "--metrics", ":9001"}, `--metrics: metrics address ":9001" names no host`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(harness.Binary(t), tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdin = strings.NewReader("")
			err := cmd.Run()
			if err == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("exit 0, want failure")
			}
			msg := strings.TrimSpace(stderr.String())
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) || strings.Contains(msg, "goroutine") {
				t.Fatalf("stderr %q, want one line containing %q", msg, tc.want)
			}
		})
	}
	running.stop(t)
}

// Every command has its own usage; gossipchain help lists them all. Help
// is no error.
func TestHelp(t *testing.T) {
	cases := []struct {
		args   []string
		stdout bool // where the usage goes: stdout for help, stderr for --help
		want   []string
	}{
		{[]string{"help"}, true, []string{"Commands:", "  chaos ", "  check ", "  version ", "gossipchain id [--port N | --data DIR]"}},
		{[]string{"--help"}, false, []string{"Commands:", "Node flags:", "-ready-file", "-author-rate", "environment: GOSSIPCHAIN_API_TOKEN", "-log-format"}},
		{[]string{"id", "--help"}, false, []string{"usage: gossipchain id", "-data", "environment: GOSSIPCHAIN_DATA"}},
		{[]string{"check", "--help"}, false, []string{"usage: gossipchain check", "-port"}},
		{[]string{"trace", "--help"}, false, []string{"usage: gossipchain trace", "-api"}},
		{[]string{"chaos", "--help"}, false, []string{"usage: gossipchain chaos", "-seed"}},
		{[]string{"psk", "--help"}, false, []string{"usage: gossipchain psk"}},
		{[]string{"version", "--help"}, false, []string{"usage: gossipchain version"}},
		{[]string{"help", "version"}, true, []string{"usage: gossipchain version"}},
		{[]string{"help", "check"}, true, []string{"usage: gossipchain check", "-port"}},
	}
	for _, tc := range cases {
		cmd := exec.Command(harness.Binary(t), tc.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, stderr.String())
			continue
		}
		got, other := stderr.String(), stdout.String()
		if tc.stdout {
			got, other = other, got
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: no %q in:\n%s", tc.args, w, got)
			}
		}
		if other != "" {
			t.Errorf("%v: usage on the other stream too: %q", tc.args, other)
		}
		if tc.args[0] != "--help" && strings.Contains(got, "Node flags:") {
			t.Errorf("%v: the node's flags, not the command's:\n%s", tc.args, got)
		}
	}
}

func TestPrivateNetworkProcesses(t *testing.T) {
	dir := t.TempDir()
	key, err := exec.Command(harness.Binary(t), "psk").Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "swarm.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startProc(t, filepath.Join(dir, "a"), "--psk", keyFile)
	for _, addr := range a.n.Addrs() {
		if strings.Contains(addr, "/quic-v1") {
			t.Errorf("a --psk node listens on QUIC: %s", addr)
		}
	}
	b := startProc(t, filepath.Join(dir, "b"), "--psk", keyFile, a.addr)
	fmt.Fprintln(a.stdin, "private")
	waitConverged(t, 20*time.Second, []string{"private"}, a, b)
	a.stop(t)
	b.stop(t)
}

func TestListenAndAnnounce(t *testing.T) {
	// --listen on another loopback address: the node's address (printed,
	// and in its ready file) is that one, and a peer reaches the node on it.
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"), "--listen", "127.0.0.2")
	if !strings.HasPrefix(a.addr, "/ip4/127.0.0.2/tcp/") {
		t.Fatalf("printed address %s, want one on 127.0.0.2", a.addr)
	}
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	fmt.Fprintln(b.stdin, "over 127.0.0.2")
	waitConverged(t, 20*time.Second, []string{"over 127.0.0.2"}, a, b)
	// --announce replaces the node's address (printed, in its ready file,
	// advertised).
	c := startProc(t, filepath.Join(dir, "c"), "--announce", "/ip4/127.0.0.3/tcp/4242")
	if !strings.HasPrefix(c.addr, "/ip4/127.0.0.3/tcp/4242/p2p/") {
		t.Fatalf("printed address %s, want the announced one", c.addr)
	}
	for _, p := range []*proc{a, b, c} {
		p.stop(t)
	}
}

// A node listens on TCP and QUIC: its ready file lists the TCP address
// first (scripts take the first), then the QUIC one, and a node given only
// the QUIC address joins over QUIC.
func TestQUICProcesses(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	addrs := a.n.Addrs()
	if len(addrs) != 2 || !strings.Contains(addrs[0], "/tcp/") || !strings.Contains(addrs[1], "/udp/") || !strings.Contains(addrs[1], "/quic-v1/p2p/") {
		t.Fatalf("ready file addrs %q, want TCP then QUIC", addrs)
	}
	b := startProc(t, filepath.Join(dir, "b"), addrs[1])
	fmt.Fprintln(b.stdin, "over QUIC")
	waitConverged(t, 20*time.Second, []string{"over QUIC"}, a, b)
	var peers []node.PeerInfo
	if err := b.n.Get("/peers", &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || len(peers[0].Addrs) == 0 || !strings.Contains(peers[0].Addrs[0], "/quic-v1") {
		t.Errorf("b's peers %+v, want a over QUIC", peers)
	}
	a.stop(t)
	b.stop(t)
}

func TestIDCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	out1, err := exec.Command(harness.Binary(t), "id", "--data", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, dir)
	if !strings.HasSuffix(p.addr, "/p2p/"+strings.TrimSpace(string(out1))) {
		t.Fatalf("id printed %s, node address %s", out1, p.addr)
	}
	p.stop(t)
}

// clusterScript returns a runner of scripts/cluster.sh on a cluster of
// its own (a temporary state dir, free ports), stopped when the test ends.
func clusterScript(t *testing.T) (func(args ...string) (string, error), string) {
	state := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{"scripts/cluster.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "GOSSIPCHAIN_CLUSTER_DIR="+state, "GOSSIPCHAIN_BASE_PORT=0", "GOSSIPCHAIN_API_BASE=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("stop") })
	return run, state
}

func TestClusterScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("cluster.sh needs curl, which is not installed")
	}
	run, state := clusterScript(t)
	if out, err := run("start", "3"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err := run("send", "2", `hello "cluster"`); err != nil || !strings.Contains(out, `"index":1`) {
		t.Fatalf("send: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "cluster status to agree at height 1", func() bool {
		out, err := run("status")
		return err == nil && strings.Contains(out, "converged") && strings.Count(out, " 1 ") >= 3
	})
	// Perturbations, each followed by status --wait: a crash and restart,
	// a frozen node, a late joiner. Every step must end converged.
	steps := [][]string{
		{"kill", "3"},
		{"send", "1", "while 3 is down"},
		{"restart", "3"},
		{"status", "--wait", "30"},
		{"pause", "2"},
		{"send", "1", "while 2 is frozen"},
		{"resume", "2"},
		{"status", "--wait", "30"},
		{"add"},
		{"status", "--wait", "30"},
	}
	for _, step := range steps {
		if out, err := run(step...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	out, err := run("status")
	if err != nil || !strings.Contains(out, "converged: all 4 running nodes") || strings.Count(out, " 3 ") < 4 {
		t.Fatalf("after perturbations: %v\n%s", err, out)
	}
	if out, err := run("status", "--wait", "x"); err == nil {
		t.Fatalf("status --wait x succeeded:\n%s", out)
	}
	if out, err := run("kill", "9"); err == nil || !strings.Contains(out, "not part of the cluster") {
		t.Fatalf("kill 9: %v\n%s", err, out)
	}
	pids, _ := filepath.Glob(filepath.Join(state, "node-*.pid"))
	var procs []int
	for _, f := range pids {
		var pid int
		b, _ := os.ReadFile(f)
		fmt.Sscan(string(b), &pid)
		procs = append(procs, pid)
	}
	if len(procs) != 4 {
		t.Fatalf("%d pid files, want 4", len(procs))
	}
	if out, err := run("stop"); err != nil || !strings.Contains(out, "stopped 4 nodes") {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	for _, pid := range procs {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d still running after stop", pid)
		}
	}
}

// Lines piped in are taken without waiting for the disk, yet acknowledged
// in order, each once stored, and a command prints after the lines before
// it.
func TestPipedLinesInOrder(t *testing.T) {
	const count = 500
	p := startProc(t, filepath.Join(t.TempDir(), "n"))
	var in strings.Builder
	for i := 1; i <= count; i++ {
		fmt.Fprintf(&in, "piped %d\n", i)
	}
	in.WriteString("/chain 1\n")
	if _, err := io.WriteString(p.stdin, in.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the /chain answer", func() bool {
		return p.find(fmt.Sprintf("  #%d ", count)) != ""
	})
	var acked []int
	chainAt, lastAck := -1, -1
	p.mu.Lock()
	for i, l := range p.lines {
		var n int
		if _, err := fmt.Sscanf(l, "> #%d", &n); err == nil {
			acked = append(acked, n)
			lastAck = i
		} else if strings.HasPrefix(l, fmt.Sprintf("  #%d ", count)) {
			chainAt = i
		}
	}
	p.mu.Unlock()
	if len(acked) != count {
		t.Fatalf("%d acknowledgements for %d lines", len(acked), count)
	}
	for i, n := range acked {
		if n != i+1 {
			t.Fatalf("acknowledgement %d is for block #%d", i+1, n)
		}
	}
	if chainAt < lastAck {
		t.Fatalf("/chain printed at output line %d, before the last acknowledgement (line %d)", chainAt, lastAck)
	}
	st := p.status(t)
	if st.Height != count {
		t.Fatalf("height %d, want %d", st.Height, count)
	}
}

// gossipchain check: a store written by a real node passes; one with a
// flipped byte in a block fails with exit status 1, naming the height; a
// file that is not a store fails the same way, without a panic.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, filepath.Join(dir, "n"))
	for i := range 50 {
		fmt.Fprintf(p.stdin, "line %d\n", i)
	}
	waitFor(t, 20*time.Second, "50 lines stored", func() bool { return p.status(t).Height == 50 })
	p.stop(t)
	run := func(data string) (string, string, int) {
		cmd := exec.Command(harness.Binary(t), "check", "--data", data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	if out, errOut, code := run(p.data); code != 0 || !strings.HasPrefix(out, "ok: height 50,") {
		t.Fatalf("healthy store: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Flip one byte of block 17's data, in place.
	db, err := bolt.Open(filepath.Join(p.data, "chain.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte("bodies")).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if k[7] == 17 {
				v = bytes.Clone(v)
				v[21] ^= 1
				return tx.Bucket([]byte("bodies")).Put(k, v)
			}
		}
		return fmt.Errorf("block 17 not found")
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.MkdirAll(garbage, 0o700)
	os.WriteFile(filepath.Join(garbage, "chain.db"), []byte(strings.Repeat("x", 8192)), 0o600)
	for _, tc := range []struct{ data, want string }{
		{p.data, "height 17: block"},
		{garbage, "corrupt store"},
		{filepath.Join(dir, "none"), "no chain store there"},
	} {
		_, errOut, code := run(tc.data)
		last := strings.TrimSpace(errOut)
		last = last[strings.LastIndex(last, "\n")+1:]
		if code != 1 || !strings.Contains(last, tc.want) || strings.Contains(errOut, "goroutine") {
			t.Errorf("check %s: exit %d, stderr %q; want exit 1 and a last line containing %q", tc.data, code, errOut, tc.want)
		}
	}
}

// TestClusterTrace: on a 5-node cluster, `cluster.sh trace 1` draws the
// spread of a block typed on node 2: every node once, one root (node 2,
// the author), and a summary of all five.
func TestClusterTrace(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("cluster.sh needs curl, which is not installed")
	}
	run, _ := clusterScript(t)
	if out, err := run("start", "5"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err := run("send", "2", "spread me"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if out, err := run("status", "--wait", "30"); err != nil {
		t.Fatalf("status --wait: %v\n%s", err, out)
	}
	var out string
	waitFor(t, 10*time.Second, "a trace of all five nodes", func() bool {
		var err error
		out, err = run("trace", "1")
		return err == nil && strings.Contains(out, "reached 5 of 5 nodes")
	}, func() string { return out })
	seen := map[string]int{}
	roots := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimLeft(line, "│├└─ "))
		if len(f) < 2 || f[0] != "node" {
			continue
		}
		seen[f[1]]++
		if strings.Contains(line, "typed here") {
			roots++
			if f[1] != "2" || strings.HasPrefix(line, " ") || strings.ContainsAny(line[:1], "│├└") {
				t.Errorf("root line %q: want node 2 at the top", line)
			}
		}
	}
	if roots != 1 || len(seen) != 5 {
		t.Fatalf("trace: %d roots, nodes %v; want one root and each of 5 nodes once:\n%s", roots, seen, out)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("node %s appears %d times:\n%s", k, c, out)
		}
	}
	t.Logf("cluster.sh trace 1:\n%s", out)
	if out, err := run("trace", "99"); err == nil {
		t.Fatalf("trace of a block nobody has succeeded:\n%s", out)
	}
}

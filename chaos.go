package main

// gossipchain chaos: a seeded schedule of faults against a cluster of real
// node processes while lines are typed on random nodes, then a check, like
// a Jepsen checker's, of what every node ended with.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gossipchain/ledger"
)

const chaosUsage = `usage: gossipchain chaos [--seed S] [--duration SECONDS] [--nodes N] [--rate LINES_PER_S] [--dir DIR]

Starts N node processes of this binary on loopback (free ports, data in DIR,
a new temporary directory by default), types lines on random nodes through
their APIs for the duration while a schedule of faults drawn from the seed
runs, one after another: a node SIGKILLed and restarted, a node frozen
(SIGSTOP) and resumed, the network cut in two (each side blocks the other's
peers: POST /peers/blocked) and healed, a late joiner. Then it heals
everything, waits until the nodes converge, and checks every node's chain:
one head everywhere, every block linked, hashed and signed, no block twice,
every acknowledged line exactly once and no line twice. It prints the
schedule (the same seed gives the same one), a one-line verdict, and exits
1 on any violation, naming it. A line whose POST got no answer (its node
was killed) may be absent; an acknowledged one never is.

Partitions are kept shorter than the settle time (10 s) and the typing slow
enough that a side adds fewer blocks than the finality depth (64): a longer
split is refused by design on heal (reorg_too_deep), which is not a fault.
`

// chaosFault is one step of the schedule.
type chaosFault struct {
	at     time.Duration // after the start
	kind   string        // kill, pause, partition, join
	node   int           // kill, pause: the node (1-based)
	side   []int         // partition: the nodes cut from the others
	length time.Duration // how long the fault lasts
}

func (f chaosFault) String() string {
	at := fmt.Sprintf("%5.1fs", f.at.Seconds())
	switch f.kind {
	case "kill":
		return fmt.Sprintf("%s kill -9 node %d, restart after %.1fs", at, f.node, f.length.Seconds())
	case "pause":
		return fmt.Sprintf("%s freeze node %d for %.1fs", at, f.node, f.length.Seconds())
	case "partition":
		return fmt.Sprintf("%s cut %v from the rest for %.1fs", at, f.side, f.length.Seconds())
	}
	return fmt.Sprintf("%s a new node joins", at)
}

// chaosSchedule draws the faults for a run of the given length on n
// nodes: one at a time, a short gap between them.
func chaosSchedule(seed uint64, n int, d time.Duration) []chaosFault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	span := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(time.Second))
	}
	var out []chaosFault
	nodes, joins := n, 0
	for t := span(1, 3); t < d-2*time.Second; {
		f := chaosFault{at: t}
		switch r := rng.IntN(100); {
		case r < 30:
			f.kind, f.node, f.length = "kill", 1+rng.IntN(nodes), span(0.5, 3)
		case r < 55:
			f.kind, f.node, f.length = "pause", 1+rng.IntN(nodes), span(0.5, 3)
		case r < 85 || joins == 2:
			perm := rng.Perm(nodes)
			side := perm[:1+rng.IntN(nodes-1)]
			for _, i := range side {
				f.side = append(f.side, i+1)
			}
			slices.Sort(f.side)
			f.kind, f.length = "partition", span(1.5, 5)
		default:
			f.kind = "join"
			nodes++
			joins++
		}
		out = append(out, f)
		t += f.length + span(1, 3)
	}
	return out
}

// chaosNode is one node process of the run.
type chaosNode struct {
	k    int
	dir  string
	port int
	id   string
	addr string
	api  string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex // guards up, and the fields above while it runs
	up   bool       // running and not frozen: lines may be typed on it
}

type chaosRun struct {
	bin, dir string
	seed     uint64
	log      io.Writer
	client   *http.Client
	nodes    []*chaosNode
	start    time.Time

	mu    sync.Mutex     // guards acked, unack and appending to nodes
	acked map[string]int // line -> node that acknowledged it
	unack map[string]bool
}

// upNode is a node lines can be typed on now.
type upNode struct {
	k   int
	api string
}

// upNodes lists the nodes running and not frozen.
func (r *chaosRun) upNodes() []upNode {
	r.mu.Lock()
	nodes := slices.Clone(r.nodes)
	r.mu.Unlock()
	var out []upNode
	for _, n := range nodes {
		n.mu.Lock()
		if n.up {
			out = append(out, upNode{n.k, n.api})
		}
		n.mu.Unlock()
	}
	return out
}

func (r *chaosRun) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "chaos: %5.1fs "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
}

// launch starts node n, peered with peer ("" for none), and waits until it
// prints its address and API.
func (r *chaosRun) launch(n *chaosNode, peer string) error {
	args := []string{"--port", strconv.Itoa(n.port), "--api", "127.0.0.1:0", "--data", n.dir}
	if peer != "" {
		args = append(args, "--peer", peer)
	}
	out, err := os.Create(n.dir + ".out")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		out.Close()
		return err
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = out, logf
	if err := cmd.Start(); err != nil {
		out.Close()
		logf.Close()
		return err
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		logf.Close()
		close(n.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("node %d exited at start; see %s.log", n.k, n.dir)
		case <-time.After(50 * time.Millisecond):
		}
		b, _ := os.ReadFile(n.dir + ".out")
		var addr, api string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "/ip4/") && addr == "" {
				addr = line
			}
			if strings.HasPrefix(line, "api: http://") && api == "" {
				api = strings.TrimPrefix(line, "api: http://")
			}
		}
		if addr != "" && api != "" {
			n.mu.Lock()
			n.addr, n.api, n.up = addr, api, true
			n.id = addr[strings.LastIndex(addr, "/")+1:]
			if p, err := strconv.Atoi(strings.Split(addr, "/")[4]); err == nil {
				n.port = p // the same port on restart: the others know it
			}
			n.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("node %d did not start within 20 s; see %s.log", n.k, n.dir)
}

func (n *chaosNode) setUp(up bool) {
	n.mu.Lock()
	n.up = up
	n.mu.Unlock()
}

func (n *chaosNode) isUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// peerFor is an address for a (re)started node to dial: node 1's, or the
// first other running node's.
func (r *chaosRun) peerFor(k int) string {
	for _, n := range r.nodes {
		if n.k != k && n.isUp() {
			return n.addr
		}
	}
	return ""
}

func (r *chaosRun) call(method, url string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// cut makes every node of side and every other node block each other
// (block true) or lets them connect again.
func (r *chaosRun) cut(side []int, block bool) {
	in := map[int]bool{}
	for _, k := range side {
		in[k] = true
	}
	var wg sync.WaitGroup
	for _, a := range r.nodes {
		for _, b := range r.nodes {
			if in[a.k] == in[b.k] {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if block {
					err = r.call(http.MethodPost, "http://"+a.api+"/peers/blocked", map[string]string{"id": b.id}, nil)
				} else {
					err = r.call(http.MethodDelete, "http://"+a.api+"/peers/blocked/"+b.id, nil, nil)
				}
				if err != nil {
					r.logf("node %d: %v", a.k, err)
				}
			}()
		}
	}
	wg.Wait()
}

// runFault carries out one fault, its end included.
func (r *chaosRun) runFault(f chaosFault) error {
	r.logf("%s", strings.TrimSpace(f.String()[6:]))
	switch f.kind {
	case "kill":
		n := r.nodes[f.node-1]
		n.setUp(false)
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
		time.Sleep(f.length)
		r.logf("restart node %d", n.k)
		if err := r.launch(n, r.peerFor(n.k)); err != nil {
			return err
		}
	case "pause":
		n := r.nodes[f.node-1]
		n.setUp(false)
		n.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(f.length)
		n.cmd.Process.Signal(syscall.SIGCONT)
		n.setUp(true)
		r.logf("resume node %d", n.k)
	case "partition":
		r.cut(f.side, true)
		time.Sleep(f.length)
		r.cut(f.side, false)
		r.logf("heal the cut")
	case "join":
		n := &chaosNode{k: len(r.nodes) + 1, dir: filepath.Join(r.dir, fmt.Sprintf("node-%d", len(r.nodes)+1))}
		if err := r.launch(n, r.peerFor(n.k)); err != nil {
			return err
		}
		r.mu.Lock()
		r.nodes = append(r.nodes, n)
		r.mu.Unlock()
		r.logf("node %d joined", n.k)
	}
	return nil
}

// typeLines posts a line to a random running node every 1/rate s until
// stop is closed, recording which were acknowledged.
func (r *chaosRun) typeLines(rate int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			wg.Wait()
			return
		case <-tick.C:
		}
		up := r.upNodes()
		if len(up) == 0 {
			continue
		}
		n := up[rand.IntN(len(up))]
		line := fmt.Sprintf("chaos %d line %05d", r.seed, seq)
		select {
		case sem <- struct{}{}:
		default:
			continue // many posts are hanging: a node is frozen
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := r.call(http.MethodPost, "http://"+n.api+"/blocks", map[string]string{"data": line}, nil)
			r.mu.Lock()
			if err == nil {
				r.acked[line] = n.k
			} else {
				r.unack[line] = true
			}
			r.mu.Unlock()
		}()
	}
}

type chaosStatus struct {
	Height  uint64          `json:"height"`
	Head    string          `json:"head"`
	Pending int             `json:"pending"`
	Syncing json.RawMessage `json:"syncing"`
}

// converge waits until every node reports one head, nothing pending and no
// sync, reporting progress while it waits.
func (r *chaosRun) converge(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	lastReport := start
	for {
		var heads []string
		first := ""
		same := true
		for _, n := range r.nodes {
			var st chaosStatus
			if err := r.call(http.MethodGet, "http://"+n.api+"/status", nil, &st); err != nil {
				heads = append(heads, fmt.Sprintf("node %d: %v", n.k, err))
				same = false
				continue
			}
			heads = append(heads, fmt.Sprintf("node %d #%d %.8s", n.k, st.Height, st.Head))
			if first == "" {
				first = st.Head
			}
			same = same && st.Pending == 0 && len(st.Syncing) == 0 && st.Head == first
		}
		if same {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no convergence within %v: %s", timeout, strings.Join(heads, "; "))
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			r.logf("waiting for one head: %s", strings.Join(heads, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// chain reads node n's whole main chain.
func (r *chaosRun) chain(n *chaosNode) ([]ledger.Block, error) {
	var out []ledger.Block
	for {
		var page []ledger.Block
		if err := r.call(http.MethodGet, fmt.Sprintf("http://%s/blocks?from=%d&limit=1000", n.api, len(out)), nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out, nil
		}
	}
}

// check is the checker: it returns the first violation, or "".
// It also returns the height and how many unacknowledged lines landed.
func (r *chaosRun) check() (string, int, int, error) {
	ref, err := r.chain(r.nodes[0])
	if err != nil {
		return "", 0, 0, err
	}
	for _, n := range r.nodes[1:] {
		c, err := r.chain(n)
		if err != nil {
			return "", 0, 0, err
		}
		if len(c) != len(ref) {
			return fmt.Sprintf("node %d has %d blocks, node 1 %d", n.k, len(c), len(ref)), 0, 0, nil
		}
		for i := range c {
			if c[i] != ref[i] {
				return fmt.Sprintf("block %d differs: node %d has %s, node 1 %s", i, n.k, c[i].Short(), ref[i].Short()), 0, 0, nil
			}
		}
	}
	if ref[0].Hash != ledger.Genesis().Hash {
		return "the chain does not start at genesis", 0, 0, nil
	}
	seen := map[string]bool{}
	count := map[string]int{}
	for i := 1; i < len(ref); i++ {
		b := &ref[i]
		switch {
		case b.Index != uint64(i) || b.PrevHash != ref[i-1].Hash:
			return fmt.Sprintf("block %d %s does not link to block %d", i, b.Short(), i-1), 0, 0, nil
		case seen[b.Hash]:
			return fmt.Sprintf("block %s is on the chain twice", b.Short()), 0, 0, nil
		}
		if err := b.CheckSanity(); err != nil {
			return fmt.Sprintf("block %d: %v", i, err), 0, 0, nil
		}
		seen[b.Hash] = true
		count[b.Data]++
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := slices.Sorted(func(yield func(string) bool) {
		for l := range r.acked {
			if !yield(l) {
				return
			}
		}
	})
	for _, l := range lines {
		if count[l] != 1 {
			return fmt.Sprintf("line %q, acknowledged by node %d, is on the chain %d times", l, r.acked[l], count[l]), 0, 0, nil
		}
	}
	for l, c := range count {
		if c > 1 {
			return fmt.Sprintf("line %q is on the chain %d times", l, c), 0, 0, nil
		}
	}
	landed := 0
	for l := range r.unack {
		landed += count[l]
	}
	return "", len(ref) - 1, landed, nil
}

func (r *chaosRun) stopAll() {
	for _, n := range r.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.done:
			continue
		default:
		}
		n.cmd.Process.Signal(syscall.SIGCONT)
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
	}
}

func chaosCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()%1_000_000), "seed of the fault schedule")
	dur := fs.Duration("duration", 60*time.Second, "how long lines are typed and faults run (e.g. 60s)")
	nodes := fs.Int("nodes", 5, "nodes to start (late joiners come on top)")
	rate := fs.Int("rate", 8, "lines typed per second, over all nodes")
	dir := fs.String("dir", "", "directory for the nodes' data and logs (default: a new temporary one, removed after a run that passes)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, chaosUsage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("chaos: %v (see gossipchain chaos --help)", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("chaos: unexpected argument %q (see gossipchain chaos --help)", fs.Arg(0))
	case *nodes < 2 || *nodes > 50:
		return fmt.Errorf("chaos: --nodes %d: want 2 to 50", *nodes)
	case *dur < 5*time.Second || *dur > time.Hour:
		return fmt.Errorf("chaos: --duration %v: want 5s to 1h", *dur)
	case *rate < 1 || *rate > 50:
		return fmt.Errorf("chaos: --rate %d: want 1 to 50 lines/s (a side of a cut must stay within the finality depth)", *rate)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chaos: %v", err)
	}
	keep := *dir != ""
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "gossipchain-chaos-"); err != nil {
			return fmt.Errorf("chaos: %v", err)
		}
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("chaos: %v", err)
	}
	r := &chaosRun{bin: bin, dir: *dir, seed: *seed, log: stdout, client: &http.Client{Timeout: 10 * time.Second},
		acked: map[string]int{}, unack: map[string]bool{}, start: time.Now()}
	defer r.stopAll()
	schedule := chaosSchedule(*seed, *nodes, *dur)
	fmt.Fprintf(stdout, "chaos: seed %d, %d nodes, %v, %d lines/s; data in %s; schedule:\n", *seed, *nodes, *dur, *rate, *dir)
	for _, f := range schedule {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	for k := 1; k <= *nodes; k++ {
		n := &chaosNode{k: k, dir: filepath.Join(*dir, fmt.Sprintf("node-%d", k))}
		if err := r.launch(n, r.peerFor(k)); err != nil {
			return fmt.Errorf("chaos: %v", err)
		}
		r.mu.Lock()
		r.nodes = append(r.nodes, n)
		r.mu.Unlock()
	}
	if _, err := r.converge(30 * time.Second); err != nil {
		return fmt.Errorf("chaos: the cluster did not form: %v", err)
	}
	r.start = time.Now()
	r.logf("%d nodes up; typing and faults start", *nodes)
	stop := make(chan struct{})
	typed := make(chan struct{})
	go func() { r.typeLines(*rate, stop); close(typed) }()
	var lastFault time.Time
	for _, f := range schedule {
		if wait := time.Until(r.start.Add(f.at)); wait > 0 {
			time.Sleep(wait)
		}
		if err := r.runFault(f); err != nil {
			close(stop)
			<-typed
			return fmt.Errorf("chaos: FAIL: %v (seed %d; logs in %s)", err, *seed, *dir)
		}
		lastFault = time.Now()
	}
	if wait := time.Until(r.start.Add(*dur)); wait > 0 {
		time.Sleep(wait)
	}
	close(stop)
	<-typed
	if lastFault.IsZero() {
		lastFault = time.Now()
	}
	r.logf("typing stopped: %d lines acknowledged, %d not; waiting for one head", len(r.acked), len(r.unack))
	took, err := r.converge(120 * time.Second)
	converged := time.Now()
	if err != nil {
		return fmt.Errorf("chaos: FAIL: %v (seed %d; logs in %s)", err, *seed, *dir)
	}
	violation, height, landed, err := r.check()
	if err != nil {
		return fmt.Errorf("chaos: FAIL: reading the chains: %v (seed %d; logs in %s)", err, *seed, *dir)
	}
	if violation != "" {
		return fmt.Errorf("chaos: FAIL: %s (seed %d; logs in %s)", violation, *seed, *dir)
	}
	fmt.Fprintf(stdout, "chaos: ok: seed %d, %d nodes, %d faults in %v; %d lines acknowledged, all on the chain once (%d unanswered, %d of them landed); height %d on every node; converged %.1fs after typing stopped, %.1fs after the last fault\n",
		*seed, len(r.nodes), len(schedule), *dur, len(r.acked), len(r.unack), landed, height, took.Seconds(), converged.Sub(lastFault).Seconds())
	r.stopAll()
	if !keep {
		os.RemoveAll(*dir)
	}
	return nil
}

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/internal/harness"
	"gossipchain/protocol"
)

// The process mode of the benchmark suite (scripts/bench.sh --processes):
// the propagation and burst scenarios with every node its own process, as
// users run them, each with its own runtime and garbage collector.
//
//   - gossipchain: the built binary, lines written to the origin's stdin,
//     arrivals read from every console ("< #index hash by author: line");
//   - gossipsub-tuned and gossipsub-bare: this test binary run again as a
//     bare GossipSub peer (TestBenchPeerProcess: tunedOptions and
//     gossipchain-sized messages, or the library's defaults; nothing
//     checked or stored), lines on stdin, arrivals on stdout.
//
// Every process is started by internal/harness and is ready when it has
// written its ready file (the peers write theirs as a node does); the
// arrival times are still read from the consoles, as a user sees them.
//
// seed-dial stays in the in-process suite: a process per node of the
// design gossipchain replaces would measure that design's process
// start-up, not its dials.
//
// CPU per block is the CPU time of every node process (from /proc), not
// the harness's.
//
//	GOSSIPCHAIN_BENCH_PROCESSES=quick go test -run '^TestBenchProcesses$' -count=1 -v ./node

func TestBenchProcesses(t *testing.T) {
	defer reportRatios()
	mode := os.Getenv("GOSSIPCHAIN_BENCH_PROCESSES")
	if mode == "" {
		t.Skip("process mode of the benchmark suite: run scripts/bench.sh --processes")
	}
	sizes, blocks, burstNodes, burstBlocks := []int{10, 25}, 300, 10, 3000
	if mode == "quick" {
		sizes, blocks, burstNodes, burstBlocks = []int{10}, 100, 10, 1000
	}
	if s := envCounts(t, "GOSSIPCHAIN_BENCH_SIZES", 2); s != nil {
		sizes = s
	}
	wirings := []int{denseWiring, sparseWiring}
	if w := envCounts(t, "GOSSIPCHAIN_BENCH_WIRING", 1); w != nil {
		wirings = w
	}
	bin := harness.Binary(t)
	run, systems, _ := benchChoice("gossipchain", "gossipsub-tuned", "gossipsub-bare")
	for _, k := range wirings {
		for _, n := range sizes {
			if !run("propagation") {
				break
			}
			wires := wiringEach(n, k, rand.New(rand.NewPCG(1, uint64(n))))
			for _, name := range systems {
				procPropagation(t, bin, name, n, k, blocks, wires)
			}
		}
		wires := wiringEach(burstNodes, k, rand.New(rand.NewPCG(2, uint64(burstNodes))))
		for _, name := range systems {
			if !run("burst") {
				break
			}
			procBurst(t, bin, name, burstNodes, k, burstBlocks, wires)
		}
	}
}

// procPropagation runs the propagation scenario on n processes of system
// name wired by wires (k earlier nodes each): blocks lines at 100/s.
func procPropagation(t *testing.T, bin, name string, n, k, blocks int, wires [][]int) {
	arr := newArrivals()
	sys := startProcSystem(t, bin, name, n, arr, wires)
	idle := sys.idleCPU(t, 3*time.Second)
	cpu0 := sys.cpu(t)
	sys.nextProfile()
	stop := sys.poll(arr)
	rate := 100
	if r := envCounts(t, "GOSSIPCHAIN_BENCH_RATE", 1); r != nil {
		rate = r[0]
	}
	propagate(t, sys, arr, n, blocks, rate)
	stop()
	sys.nextProfile()
	syncs := sys.catchUp(arr, blocks)
	r := arr.result("propagation", name, n, blocks)
	r.CPUmsPerBlock = round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(blocks))
	r.Mode, r.PeersEach, r.IdleCPUPct = "processes", k, idle
	if name == "gossipchain" {
		r.Stages = sys.stagesOf()
	}
	sys.close()
	report(t, r)
	if syncs > 0 {
		progress("propagation: %s at %d nodes, %d peers each: %d chain reads (syncs, lagging)", name, n, k, syncs)
	}
}

// procBurst runs the burst scenario: blocks lines as fast as the origin
// takes them.
func procBurst(t *testing.T, bin, name string, n, k, blocks int, wires [][]int) {
	arr := newArrivals()
	sys := startProcSystem(t, bin, name, n, arr, wires)
	cpu0 := sys.cpu(t)
	sys.nextProfile()
	stop := sys.poll(arr)
	took := burst(t, sys, arr, n, blocks)
	stop()
	sys.nextProfile()
	cpu := round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(blocks))
	if syncs := sys.catchUp(arr, blocks); syncs > 0 {
		progress("burst: %s, %d peers each: %d chain reads (syncs, lagging)", name, k, syncs)
	}
	r := arr.result("burst", name, n, blocks)
	r.CPUmsPerBlock, r.Mode, r.PeersEach = cpu, "processes", k
	r.BlocksPerS = round2(float64(blocks) * *r.DeliveredPct / 100 / took.Seconds())
	if name == "gossipchain" {
		r.Stages = sys.stagesOf()
	}
	sys.close()
	report(t, r)
}

// procSystem is a network of node processes.
type procSystem struct {
	name  string
	procs []*benchProc
}

type benchProc struct {
	n       *harness.Node
	started chan struct{} // closed once n is set
	mu      sync.Mutex    // guards stdin
	stdin   *bufio.Writer
	// fetched: chain reads under way (startBenchProc); next: the index of
	// the last block read from the chain.
	fetched sync.WaitGroup
	syncs   atomic.Int64
	readMu  sync.Mutex
	next    uint64
}

// startProcSystem starts n processes of system name, node i dialling
// wires[i], and waits until a message from node 0 reaches all of them.
func startProcSystem(t *testing.T, bin, name string, n int, arr *arrivals, wires [][]int) *procSystem {
	s := &procSystem{name: name}
	for i := range n {
		cfg := harness.Config{Bin: bin, Data: filepath.Join(t.TempDir(), "data"), Stdin: true}
		for _, j := range wires[i] {
			cfg.Peers = append(cfg.Peers, s.procs[j].n.Addr())
		}
		if name == "gossipchain" {
			// No author budget: the burst measures how fast blocks spread,
			// not the 200/s a node allows one author by default.
			cfg.Args = []string{"--author-rate", "0"}
		} else {
			cfg.Bin, cfg.NoAPI = os.Args[0], true
			cfg.Args = []string{"-test.run", "^TestBenchPeerProcess$"}
			if prof := os.Getenv("GOSSIPCHAIN_CPUPROFILE"); prof != "" {
				// As gossipchain's processes do: one profile per process.
				cfg.Args = append(cfg.Args, "-test.cpuprofile", fmt.Sprintf("%s.%s.%d", prof, name, i))
			}
			cfg.Args = append(cfg.Args, "--") // the harness's flags are the peer's
			cfg.Env = []string{"GOSSIPCHAIN_BENCH_PEER=" + name}
		}
		s.procs = append(s.procs, startBenchProc(t, cfg, i, arr))
	}
	// Warm up until a line reaches everyone: meshes form at heartbeats.
	for seq := -1; ; seq-- {
		if err := s.publish(0, fmt.Sprintf("%d|warm-up", seq)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if arr.warmedUp(seq, n) {
			break
		}
		if seq < -100 {
			arr.mu.Lock()
			got := map[int]int{}
			for k := range arr.seen {
				got[k[1]]++
			}
			arr.mu.Unlock()
			t.Fatalf("%s: %d processes, a warm-up line never reached them all (warm-up lines seen by each: %v)", name, n, got)
		}
	}
	return s
}

// startBenchProc starts node i: its console's arrival lines are counted,
// and blocks it stores by sync (which a gossipchain console sums up in
// one "~ synced" line) are read from its API at once.
func startBenchProc(t *testing.T, cfg harness.Config, i int, arr *arrivals) *benchProc {
	p := &benchProc{started: make(chan struct{})}
	cfg.Stdout = harness.LineFunc(func(l string) {
		switch {
		case strings.HasPrefix(l, "~ synced"):
			p.fetched.Add(1)
			go func() {
				defer p.fetched.Done()
				<-p.started
				p.readChain(i, arr)
			}()
		case strings.HasPrefix(l, "< "):
			if _, data, ok := strings.Cut(l, ": "); ok {
				arr.arrived(i, data)
			}
		}
	})
	p.n = harness.StartTB(t, cfg)
	p.stdin = bufio.NewWriter(p.n.Stdin())
	close(p.started)
	return p
}

// publish writes payload as a line to node origin's stdin.
func (s *procSystem) publish(origin int, payload string) error {
	p := s.procs[origin]
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.stdin.WriteString(payload + "\n"); err != nil {
		return err
	}
	return p.stdin.Flush()
}

// readChain marks the blocks on node i's chain from the last it read on
// as arrived (those that had not already): after a sync line, and while
// it lags (procSystem.poll).
func (p *benchProc) readChain(i int, arr *arrivals) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	p.syncs.Add(1)
	for {
		got, err := p.n.Blocks(p.next + 1)
		if err != nil || len(got) == 0 {
			return
		}
		for _, b := range got {
			arr.arrived(i, b.Data)
			p.next = max(p.next, b.Index)
		}
	}
}

// poll reads, every 250 ms while the scenario runs, the chains of
// gossipchain nodes that hold fewer blocks than were published a second
// ago or earlier (gossip brings a block within milliseconds): blocks
// they stored without printing them (a sync's, summed up in one line) are
// counted when they are there, not at the end.
func (s *procSystem) poll(arr *arrivals) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if s.name == "gossipchain" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				want := arr.publishedBefore(time.Now().Add(-time.Second))
				for i, p := range s.procs[1:] {
					if arr.countNode(i+1) < want {
						p.readChain(i+1, arr)
					}
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// catchUp waits for the chain reads under way, then reads the chain of any
// gossipchain node that still lacks blocks, and returns how many chain
// reads there were.
func (s *procSystem) catchUp(arr *arrivals, blocks int) int64 {
	var reads int64
	for i, p := range s.procs {
		p.fetched.Wait()
		if i > 0 && s.name == "gossipchain" && arr.countNode(i) < blocks {
			p.readChain(i, arr)
		}
		reads += p.syncs.Load()
	}
	return reads
}

// idleCPU is the share of one core each process used, on average, over d
// with nothing published: heartbeats, keep-alives, timers.
func (s *procSystem) idleCPU(t *testing.T, d time.Duration) float64 {
	cpu0 := s.cpu(t)
	time.Sleep(d)
	return round2(100 * float64(s.cpu(t)-cpu0) / float64(d) / float64(len(s.procs)))
}

// cpu is the CPU time (user and system) every process has used so far.
func (s *procSystem) cpu(t *testing.T) time.Duration {
	var total time.Duration
	for _, p := range s.procs {
		total += procCPU(t, p.n.Pid())
	}
	return total
}

// nextProfile has gossipchain's processes, when GOSSIPCHAIN_CPUPROFILE is
// set, end their CPU profile and start the next (PATH.PID.1 is the
// scenario alone: the burst, or the paced blocks). The library's peers
// profile their whole run.
func (s *procSystem) nextProfile() {
	if s.name != "gossipchain" || os.Getenv("GOSSIPCHAIN_CPUPROFILE") == "" {
		return
	}
	for _, p := range s.procs {
		p.n.Signal(syscall.SIGUSR1)
	}
}

// procCPU reads a process's user and system time from /proc/PID/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// close ends every process as a user would (end of input, then Ctrl-C: a
// node shuts down cleanly, writing its CPU profile if
// GOSSIPCHAIN_CPUPROFILE is set), killing what has not exited 10 s later.
func (s *procSystem) close() {
	for _, p := range s.procs {
		p.mu.Lock()
		p.n.Stdin().Close()
		p.mu.Unlock()
		p.n.Signal(os.Interrupt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range s.procs {
		select {
		case <-p.n.Done():
		case <-ctx.Done():
		}
		p.n.Kill()
	}
}

// publishedBefore is how many counted blocks were published before t.
func (a *arrivals) publishedBefore(t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for seq, at := range a.sent {
		if seq >= 0 && at.Before(t) {
			n++
		}
	}
	return n
}

// countNode is how many counted blocks reached node.
func (a *arrivals) countNode(node int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.counted[node]
}

// TestBenchPeerProcess is gossipsub-tuned or gossipsub-bare as a process
// of its own: run by TestBenchProcesses with GOSSIPCHAIN_BENCH_PEER=SYSTEM
// and, after "--", the flags internal/harness gives a node (--peer
// ADDR..., --ready-file PATH; the others are ignored), it dials the
// peers, writes its ready file as a node does, publishes each stdin line
// (tuned: as a gossipchain-sized message; bare: as the tutorial's block,
// with the library's defaults) and prints "< : line" for each it
// receives.
func TestBenchPeerProcess(t *testing.T) {
	system := os.Getenv("GOSSIPCHAIN_BENCH_PEER")
	if system == "" {
		t.Skip("a helper process of TestBenchProcesses")
	}
	var peers []string
	fs := flag.NewFlagSet("bench peer", flag.ContinueOnError)
	fs.Func("peer", "address to dial (repeat)", func(v string) error { peers = append(peers, v); return nil })
	readyFile := fs.String("ready-file", "", "where to write the ready file")
	fs.Int("port", 0, "ignored: the peer listens on a free port")
	fs.String("data", "", "ignored: the peer stores nothing")
	if err := fs.Parse(flag.Args()); err != nil {
		t.Fatal(err)
	}
	// Ctrl-C (as TestBenchProcesses ends it) returns, so the test binary
	// writes its -test.cpuprofile.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tuned := system == "gossipsub-tuned"
	wrap := tutorialBlock
	if tuned {
		wrap = sizedBlock
	}
	topic, sub, err := joinBench(ctx, h, tuned)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range peers {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			t.Fatal(err)
		}
		pi, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, *pi); err != nil {
			t.Fatal(err)
		}
	}
	ready := harness.Ready{ID: h.ID().String(), Addrs: []string{fmt.Sprintf("%s/p2p/%s", h.Addrs()[0], h.ID())}}
	if err := harness.WriteReady(*readyFile, ready); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	go func() {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom != h.ID() {
				outMu.Lock()
				fmt.Fprintf(out, "< : %s\n", tutorialData(m.Data))
				out.Flush()
				outMu.Unlock()
			}
		}
	}()
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if err := topic.Publish(ctx, wrap(in.Text())); err != nil {
				return
			}
		}
	}()
	<-ctx.Done()
}

// benchStages is where gossipchain's blocks spent their time on the way,
// from every node's traces (GET /blocks/{index}/trace) after a scenario:
// the p50 and p99, in ms, of each stage of a block's validation on the
// nodes it reached by gossip (protocol.Trace), of a hop (from a block's
// first arrival at the peer it came from to its first arrival here:
// the peer's stages, its relay and the wire), and the hops from the
// origin; how many copies came by sync, or by gossip but before their
// parent (held as orphans, then stored when the parent connected them);
// and the duplicate copies a node received.
type benchStages struct {
	Traced   int `json:"traced"`
	BySync   int `json:"by_sync"`
	Orphaned int `json:"orphaned"`
	// Duplicates is the mean of the copies a node received of a block
	// after its first (the traces' duplicates).
	Duplicates float64    `json:"duplicates"`
	Queue      [2]float64 `json:"queue_ms"`
	Check      [2]float64 `json:"check_ms"`
	Parent     [2]float64 `json:"parent_ms"`
	Store      [2]float64 `json:"store_ms"`
	Relay      [2]float64 `json:"relay_ms"`
	Hop        [2]float64 `json:"hop_ms"`
	Hops       [2]float64 `json:"hops"`
}

// stagesOf reads every node's traces of the chain's blocks and sums them
// up (nil if a trace could not be read).
func (s *procSystem) stagesOf() *benchStages {
	traces := make([]map[uint64]protocol.Trace, len(s.procs))
	byID := map[string]int{}
	for i, p := range s.procs {
		byID[p.n.ID()] = i
		st, err := p.n.Status()
		if err != nil {
			return nil
		}
		traces[i] = map[uint64]protocol.Trace{}
		for idx := uint64(1); idx <= st.Height; idx++ {
			var tr protocol.Trace
			if err := p.n.Get(fmt.Sprintf("/blocks/%d/trace", idx), &tr); err == nil {
				traces[i][idx] = tr
			}
		}
	}
	progress("reading %d nodes' traces", len(s.procs))
	var out benchStages
	var queue, check, parent, store, relay, hop, hops []float64
	dups := 0
	ms := func(us int64) float64 { return float64(us) / 1000 }
	for i := 1; i < len(s.procs); i++ {
		for idx, tr := range traces[i] {
			out.Traced++
			dups += tr.Duplicates
			switch {
			case tr.Via == OriginSync:
				out.BySync++
				continue
			case tr.Via != OriginGossip:
				continue
			case tr.HandleUS == 0:
				out.Orphaned++
			default:
				queue, check, parent, store = append(queue, ms(tr.QueueUS)), append(check, ms(tr.CheckUS)), append(parent, ms(tr.ParentUS)), append(store, ms(tr.StoreUS))
				if tr.RelayUS > 0 {
					relay = append(relay, ms(tr.RelayUS))
				}
			}
			if j, ok := byID[tr.From]; ok {
				if up, ok := traces[j][idx]; ok {
					hop = append(hop, float64(tr.FirstSeenMS-up.FirstSeenMS))
				}
			}
			if h := hopsTo(traces, byID, i, idx); h > 0 {
				hops = append(hops, float64(h))
			}
		}
	}
	out.Queue, out.Check, out.Parent, out.Store, out.Relay, out.Hop, out.Hops = p50p99(queue), p50p99(check), p50p99(parent), p50p99(store), p50p99(relay), p50p99(hop), p50p99(hops)
	if out.Traced > 0 {
		out.Duplicates = round2(float64(dups) / float64(out.Traced))
	}
	line, _ := json.Marshal(out)
	progress("stages (p50, p99): %s", line)
	return &out
}

// hopsTo follows block idx's first arrivals from node i back to the node
// that made it: the hops it took (0: the path is not known).
func hopsTo(traces []map[uint64]protocol.Trace, byID map[string]int, i int, idx uint64) int {
	for h := 0; h < len(traces); h++ {
		tr, ok := traces[i][idx]
		if !ok {
			return 0
		}
		if tr.From == "" {
			return h
		}
		if i, ok = byID[tr.From]; !ok {
			return 0
		}
	}
	return 0
}

func p50p99(v []float64) [2]float64 {
	if len(v) == 0 {
		return [2]float64{}
	}
	slices.Sort(v)
	return [2]float64{round2(v[len(v)/2]), round2(v[min(len(v)-1, len(v)*99/100)])}
}

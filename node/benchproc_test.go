package node

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/internal/harness"
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
	bin := harness.Binary(t)
	run, systems, _ := benchChoice("gossipchain", "gossipsub-tuned", "gossipsub-bare")
	for _, n := range sizes {
		if !run("propagation") {
			break
		}
		wires := wiring(n, rand.New(rand.NewPCG(1, uint64(n))))
		for _, name := range systems {
			arr := newArrivals()
			sys := startProcSystem(t, bin, name, n, arr, wires)
			cpu0 := sys.cpu(t)
			stop := sys.poll(arr)
			propagate(t, sys, arr, n, blocks, 100)
			stop()
			syncs := sys.catchUp(arr, blocks)
			r := arr.result("propagation", name, n, blocks)
			r.CPUmsPerBlock = round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(blocks))
			r.Mode = "processes"
			sys.close()
			report(t, r)
			if syncs > 0 {
				progress("propagation: %s at %d nodes: %d chain reads (syncs, lagging)", name, n, syncs)
			}
		}
	}
	wires := wiring(burstNodes, rand.New(rand.NewPCG(2, uint64(burstNodes))))
	for _, name := range systems {
		if !run("burst") {
			break
		}
		arr := newArrivals()
		sys := startProcSystem(t, bin, name, burstNodes, arr, wires)
		cpu0 := sys.cpu(t)
		stop := sys.poll(arr)
		took := burst(t, sys, arr, burstNodes, burstBlocks)
		stop()
		cpu := round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(burstBlocks))
		if syncs := sys.catchUp(arr, burstBlocks); syncs > 0 {
			progress("burst: %s: %d chain reads (syncs, lagging)", name, syncs)
		}
		r := arr.result("burst", name, burstNodes, burstBlocks)
		r.CPUmsPerBlock, r.Mode = cpu, "processes"
		r.BlocksPerS = round2(float64(burstBlocks) * *r.DeliveredPct / 100 / took.Seconds())
		sys.close()
		report(t, r)
	}
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

// cpu is the CPU time (user and system) every process has used so far.
func (s *procSystem) cpu(t *testing.T) time.Duration {
	var total time.Duration
	for _, p := range s.procs {
		total += procCPU(t, p.n.Pid())
	}
	return total
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

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The process mode of the benchmark suite (scripts/bench.sh --processes):
// the propagation and burst scenarios with every node its own process, as
// users run them, each with its own runtime and garbage collector.
//
//   - gossipchain: the built binary, lines written to the origin's stdin,
//     arrivals read from every console ("< #index hash by author: line");
//   - gossipsub-tuned: this test binary run again as a bare GossipSub peer
//     (TestBenchPeerProcess: tunedOptions, gossipchain-sized messages,
//     nothing checked or stored), lines on stdin, arrivals on stdout.
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
	bin := buildBinary(t, t.TempDir())
	systems := []string{"gossipchain", "gossipsub-tuned"}
	only := os.Getenv("GOSSIPCHAIN_BENCH_ONLY")
	run := func(scenario string) bool { return only == "" || strings.Contains(only, scenario) }
	for _, n := range sizes {
		if !run("propagation") {
			break
		}
		wires := wiring(n, rand.New(rand.NewPCG(1, uint64(n))))
		for _, name := range systems {
			arr := newArrivals()
			sys := startProcSystem(t, bin, name, n, arr, wires)
			cpu0 := sys.cpu(t)
			propagate(t, sys, arr, n, blocks, 100)
			sys.catchUp(t, arr, blocks)
			r := arr.result("propagation", name, n, blocks)
			r.CPUmsPerBlock = round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(blocks))
			r.Mode = "processes"
			sys.close()
			report(t, r)
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
		took := burst(t, sys, arr, burstNodes, burstBlocks)
		cpu := round2(float64((sys.cpu(t) - cpu0).Microseconds()) / 1000 / float64(burstBlocks))
		sys.catchUp(t, arr, burstBlocks)
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
	cmd   *exec.Cmd
	mu    sync.Mutex // guards stdin
	stdin *bufio.Writer
	pipe  io.WriteCloser
	addr  string
	api   string
	done  chan struct{}
}

// startProcSystem starts n processes of system name, node i dialling
// wires[i], and waits until a message from node 0 reaches all of them.
func startProcSystem(t *testing.T, bin, name string, n int, arr *arrivals, wires [][]int) *procSystem {
	s := &procSystem{name: name}
	for i := range n {
		var addrs []string
		for _, j := range wires[i] {
			addrs = append(addrs, s.procs[j].addr)
		}
		var cmd *exec.Cmd
		if name == "gossipchain" {
			// No author budget: the burst measures how fast blocks spread,
			// not the 200/s a node allows one author by default.
			args := []string{"--port", "0", "--api", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--author-rate", "0"}
			for _, a := range addrs {
				args = append(args, "--peer", a)
			}
			cmd = exec.Command(bin, args...)
		} else {
			cmd = exec.Command(os.Args[0], "-test.run", "^TestBenchPeerProcess$")
			cmd.Env = append(os.Environ(), "GOSSIPCHAIN_BENCH_PEER="+strings.Join(append([]string{"peers"}, addrs...), ","))
		}
		s.procs = append(s.procs, startBenchProc(t, cmd, i, arr))
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

func startBenchProc(t *testing.T, cmd *exec.Cmd, i int, arr *arrivals) *benchProc {
	cmd.Stderr = io.Discard
	pipe, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &benchProc{cmd: cmd, pipe: pipe, stdin: bufio.NewWriter(pipe), done: make(chan struct{})}
	t.Cleanup(p.kill)
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case p.addr == "" && strings.HasPrefix(l, "/ip4/"):
				p.addr = l
				close(ready)
			case strings.HasPrefix(l, "api: http://"):
				p.api = strings.TrimPrefix(l, "api: http://")
			case strings.HasPrefix(l, "< "):
				if _, data, ok := strings.Cut(l, ": "); ok {
					arr.arrived(i, data)
				}
			}
		}
		cmd.Wait()
	}()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("process %d exited before printing its address", i)
	case <-time.After(30 * time.Second):
		t.Fatalf("process %d printed no address in 30 s", i)
	}
	return p
}

func (p *benchProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
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

// catchUp marks as arrived, now, what a gossipchain node holds but never
// printed (blocks it stored by sync, which its console sums up in one
// line): late, but delivered.
func (s *procSystem) catchUp(t *testing.T, arr *arrivals, blocks int) {
	if s.name != "gossipchain" {
		return
	}
	for i, p := range s.procs[1:] {
		if arr.countNode(i+1) >= blocks {
			continue
		}
		for from := 1; ; from += 1000 {
			resp, err := http.Get(fmt.Sprintf("http://%s/blocks?from=%d&limit=1000", p.api, from))
			if err != nil {
				t.Fatal(err)
			}
			var got []struct{ Data string }
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || len(got) == 0 {
				break
			}
			for _, b := range got {
				arr.arrived(i+1, b.Data)
			}
		}
	}
}

// cpu is the CPU time (user and system) every process has used so far.
func (s *procSystem) cpu(t *testing.T) time.Duration {
	var total time.Duration
	for _, p := range s.procs {
		total += procCPU(t, p.cmd.Process.Pid)
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

func (s *procSystem) close() {
	for _, p := range s.procs {
		p.mu.Lock()
		p.pipe.Close()
		p.mu.Unlock()
		p.kill()
	}
}

// countNode is how many counted blocks reached node.
func (a *arrivals) countNode(node int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k := range a.seen {
		if k[0] >= 0 && k[1] == node {
			n++
		}
	}
	return n
}

// TestBenchPeerProcess is gossipsub-tuned as a process of its own: run by
// TestBenchProcesses with GOSSIPCHAIN_BENCH_PEER=peers[,ADDR...], it
// dials ADDRs, prints its address, publishes each stdin line as a
// gossipchain-sized message and prints "< : line" for each it receives.
func TestBenchPeerProcess(t *testing.T) {
	spec := os.Getenv("GOSSIPCHAIN_BENCH_PEER")
	if spec == "" {
		t.Skip("a helper process of TestBenchProcesses")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(ctx, h, tunedOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join("bench")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(subscriptionQueue))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Split(spec, ",")[1:] {
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
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	fmt.Fprintf(out, "%s/p2p/%s\n", h.Addrs()[0], h.ID())
	out.Flush()
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
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := topic.Publish(ctx, sizedBlock(in.Text())); err != nil {
			t.Fatal(err)
		}
	}
}

package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The benchmark suite compares gossipchain with what it replaces and with
// the library it is built on, in one run on loopback. scripts/bench.sh runs
// it; by itself:
//
//	GOSSIPCHAIN_BENCH=quick go test -run '^TestBenchSuite$' -count=1 -v ./node
//
// Each result is printed as one JSON line prefixed "BENCH ".
//
// Systems:
//   - gossipchain: real nodes (validation, signatures, storage, sync);
//   - gossipsub-bare: go-libp2p-pubsub with default options, no validation
//     or storage (the library floor);
//   - seed-dial: the design gossipchain replaces: per block, dial every
//     known peer over TCP, send JSON, close;
//   - floor: one persistent libp2p stream between two hosts (one hop).

// benchResult is one line of the suite's output.
type benchResult struct {
	Scenario     string  `json:"scenario"`
	System       string  `json:"system"`
	Nodes        int     `json:"nodes"`
	Blocks       int     `json:"blocks"`
	DeliveredPct float64 `json:"delivered_pct"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Maxms        float64 `json:"max_ms"`
	BlocksPerS   float64 `json:"blocks_per_s,omitempty"`
}

// benchSystem is one way of getting a block from an origin to n-1 others.
type benchSystem interface {
	// publish sends payload (which starts with the block's sequence
	// number and a '|') from node origin.
	publish(origin int, payload string) error
	close()
}

// arrivals collects when each node first saw each block.
type arrivals struct {
	mu   sync.Mutex
	sent map[int]time.Time
	seen map[[2]int]time.Time // {seq, node}
}

func newArrivals() *arrivals {
	return &arrivals{sent: map[int]time.Time{}, seen: map[[2]int]time.Time{}}
}

func (a *arrivals) published(seq int) {
	a.mu.Lock()
	a.sent[seq] = time.Now()
	a.mu.Unlock()
}

// arrived records data (a payload) reaching node.
func (a *arrivals) arrived(node int, data string) {
	now := time.Now()
	seqText, _, ok := strings.Cut(data, "|")
	seq, err := strconv.Atoi(seqText)
	if !ok || err != nil {
		return
	}
	a.mu.Lock()
	if _, dup := a.seen[[2]int{seq, node}]; !dup {
		a.seen[[2]int{seq, node}] = now
	}
	a.mu.Unlock()
}

// warmedUp reports whether warm-up message seq (negative, not counted)
// reached all n-1 other nodes.
func (a *arrivals) warmedUp(seq, n int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := 0
	for k := range a.seen {
		if k[0] == seq {
			got++
		}
	}
	return got == n-1
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k := range a.seen {
		if k[0] >= 0 {
			n++
		}
	}
	return n
}

// result summarises latencies from publish to arrival over every
// (block, receiving node) pair.
func (a *arrivals) result(scenario, system string, nodes, blocks int) benchResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lat []float64
	for k, at := range a.seen {
		if sent, ok := a.sent[k[0]]; ok && k[0] >= 0 {
			lat = append(lat, float64(at.Sub(sent).Microseconds())/1000)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return round2(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	r := benchResult{Scenario: scenario, System: system, Nodes: nodes, Blocks: blocks,
		DeliveredPct: round2(100 * float64(len(lat)) / float64(blocks*(nodes-1)))}
	r.P50ms, r.P99ms = pct(0.50), pct(0.99)
	if len(lat) > 0 {
		r.Maxms = round2(lat[len(lat)-1])
	}
	return r
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

const benchData = "a line typed on a console, about as long as people type"

// wiring gives each node i > 0 up to 8 random earlier nodes to connect to,
// the same for every system that has a network (a connected graph).
func wiring(n int, rng *rand.Rand) [][]int {
	out := make([][]int, n)
	for i := 1; i < n; i++ {
		perm := rng.Perm(i)
		out[i] = perm[:min(i, 8)]
	}
	return out
}

// --- gossipchain -----------------------------------------------------------

type gossipchainSystem struct {
	nodes []*Node
	wg    sync.WaitGroup
}

func startGossipchain(t *testing.T, n int, arr *arrivals, wires [][]int) *gossipchainSystem {
	s := &gossipchainSystem{}
	for i := 0; i < n; i++ {
		cfg := Config{DataDir: t.TempDir()}
		for _, j := range wires[i] {
			cfg.Peers = append(cfg.Peers, peer.AddrInfo{ID: s.nodes[j].ID(), Addrs: s.nodes[j].host.Addrs()})
		}
		node, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, node)
		// Arrival = stored, by gossip or (for a missed message) by sync.
		events, _ := node.events.subscribe()
		s.wg.Add(1)
		go func(i int) {
			defer s.wg.Done()
			for e := range events {
				if e.Type == "block" && e.Origin != "local" {
					arr.arrived(i, e.Block.Data)
				}
			}
		}(i)
	}
	waitMesh(t, s.nodes...)
	return s
}

func (s *gossipchainSystem) publish(origin int, payload string) error {
	_, err := s.nodes[origin].Append(context.Background(), payload)
	return err
}

func (s *gossipchainSystem) close() {
	for _, n := range s.nodes {
		n.Close()
	}
	s.wg.Wait()
}

// --- gossipsub-bare ----------------------------------------------------------

type bareSystem struct {
	hosts  []host.Host
	topics []*pubsub.Topic
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startBare(t *testing.T, n int, arr *arrivals, wires [][]int) *bareSystem {
	ctx, cancel := context.WithCancel(context.Background())
	s := &bareSystem{cancel: cancel}
	for i := 0; i < n; i++ {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		ps, err := pubsub.NewGossipSub(ctx, h) // library defaults: signed messages, default queues
		if err != nil {
			t.Fatal(err)
		}
		topic, err := ps.Join("bench")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		s.hosts, s.topics = append(s.hosts, h), append(s.topics, topic)
		s.wg.Add(1)
		go func(i int) {
			defer s.wg.Done()
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if m.ReceivedFrom != h.ID() {
					arr.arrived(i, string(m.Data))
				}
			}
		}(i)
		for _, j := range wires[i] {
			if err := h.Connect(ctx, peer.AddrInfo{ID: s.hosts[j].ID(), Addrs: s.hosts[j].Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 20*time.Second, "every bare host subscribed with a peer", func() bool {
		for _, tp := range s.topics {
			if len(tp.ListPeers()) == 0 {
				return false
			}
		}
		return true
	})
	// Warm up until a message reaches everyone: meshes form at heartbeats.
	for seq := -1; ; seq-- {
		if err := s.topics[0].Publish(ctx, []byte(fmt.Sprintf("%d|warm-up", seq))); err != nil {
			t.Fatal(err)
		}
		if arr.warmedUp(seq, n) || seq < -200 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

func (s *bareSystem) publish(origin int, payload string) error {
	return s.topics[origin].Publish(context.Background(), []byte(payload))
}

func (s *bareSystem) close() {
	s.cancel()
	for _, h := range s.hosts {
		h.Close()
	}
	s.wg.Wait()
}

// --- seed-dial ---------------------------------------------------------------

// seedDialSystem is the design gossipchain replaces: each node listens on
// TCP; to send a block, the origin dials every other node, writes the block
// as JSON, and closes the connection.
type seedDialSystem struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

func startSeedDial(t *testing.T, n int, arr *arrivals) *seedDialSystem {
	s := &seedDialSystem{}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.lns = append(s.lns, ln)
		s.wg.Add(1)
		go func(i int) {
			defer s.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					defer c.Close()
					var msg struct{ Data string }
					if json.NewDecoder(c).Decode(&msg) == nil {
						arr.arrived(i, msg.Data)
					}
				}()
			}
		}(i)
	}
	return s
}

func (s *seedDialSystem) publish(origin int, payload string) error {
	msg, _ := json.Marshal(map[string]string{"data": payload})
	for i, ln := range s.lns {
		if i == origin {
			continue
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		_, err = c.Write(msg)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *seedDialSystem) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

// --- floor -------------------------------------------------------------------

// floorSystem is one persistent libp2p stream between two hosts: the
// latency of one hop, with nothing to relay or check.
type floorSystem struct {
	hosts  [2]host.Host
	stream network.Stream
	w      *bufio.Writer
	mu     sync.Mutex
	done   chan struct{}
}

func startFloor(t *testing.T, arr *arrivals) *floorSystem {
	s := &floorSystem{done: make(chan struct{})}
	for i := range s.hosts {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		s.hosts[i] = h
	}
	s.hosts[1].SetStreamHandler("/gossipchain/bench-floor", func(st network.Stream) {
		defer close(s.done)
		r := bufio.NewReader(st)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			arr.arrived(1, string(buf))
		}
	})
	ctx := context.Background()
	if err := s.hosts[0].Connect(ctx, peer.AddrInfo{ID: s.hosts[1].ID(), Addrs: s.hosts[1].Addrs()}); err != nil {
		t.Fatal(err)
	}
	st, err := s.hosts[0].NewStream(ctx, s.hosts[1].ID(), "/gossipchain/bench-floor")
	if err != nil {
		t.Fatal(err)
	}
	s.stream, s.w = st, bufio.NewWriter(st)
	return s
}

func (s *floorSystem) publish(_ int, payload string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.Write(binary.AppendUvarint(nil, uint64(len(payload))))
	s.w.WriteString(payload)
	return s.w.Flush()
}

func (s *floorSystem) close() {
	s.stream.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	for _, h := range s.hosts {
		h.Close()
	}
}

// --- scenarios -------------------------------------------------------------

// propagate publishes blocks from node 0 at rate per second and waits
// until every node has every block (or the deadline passes).
func propagate(t *testing.T, sys benchSystem, arr *arrivals, nodes, blocks, rate int) {
	every := time.Second / time.Duration(rate)
	next := time.Now()
	for seq := 0; seq < blocks; seq++ {
		time.Sleep(time.Until(next))
		next = next.Add(every)
		arr.published(seq)
		if err := sys.publish(0, fmt.Sprintf("%d|%s", seq, benchData)); err != nil {
			t.Errorf("publish %d: %v", seq, err)
			return
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for arr.count() < blocks*(nodes-1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func report(r benchResult) {
	line, _ := json.Marshal(r)
	fmt.Printf("BENCH %s\n", line)
}

func TestBenchSuite(t *testing.T) {
	mode := os.Getenv("GOSSIPCHAIN_BENCH")
	if mode == "" {
		t.Skip("benchmark suite: run scripts/bench.sh (or set GOSSIPCHAIN_BENCH=quick|full)")
	}
	sizes, blocks := []int{3, 10, 25}, 300
	if mode == "quick" {
		sizes, blocks = []int{3, 10}, 100
	}
	const rate = 100
	for _, n := range sizes {
		wires := wiring(n, rand.New(rand.NewPCG(1, uint64(n))))
		for _, name := range []string{"gossipchain", "gossipsub-bare", "seed-dial"} {
			arr := newArrivals()
			var sys benchSystem
			switch name {
			case "gossipchain":
				sys = startGossipchain(t, n, arr, wires)
			case "gossipsub-bare":
				sys = startBare(t, n, arr, wires)
			case "seed-dial":
				sys = startSeedDial(t, n, arr)
			}
			propagate(t, sys, arr, n, blocks, rate)
			sys.close()
			report(arr.result("propagation", name, n, blocks))
		}
	}
	arr := newArrivals()
	floor := startFloor(t, arr)
	propagate(t, floor, arr, 2, blocks, rate)
	floor.close()
	report(arr.result("propagation", "floor", 2, blocks))
}

package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	libp2pmetrics "github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/internal/harness"
	"gossipchain/protocol"
)

// The benchmark suite compares gossipchain with what it replaces and with
// the library it is built on, in one run on loopback. scripts/bench.sh runs
// it; by itself:
//
//	GOSSIPCHAIN_BENCH=quick go test -run '^TestBenchSuite$' -count=1 -v ./node
//
// Each result is printed as one JSON line prefixed "BENCH ", and at the end
// gossipchain's figures over gossipsub-tuned's as lines prefixed "RATIO ".
//
// Systems:
//   - gossipchain: real nodes (validation, signatures, storage, sync);
//   - gossipsub-tuned: go-libp2p-pubsub as gossipchain configures it
//     (StrictNoSign, SHA-256 content IDs, queues of 8,192, flood
//     publishing) with gossipchain-sized messages, nothing checked or
//     stored: the library's floor, configured well;
//   - gossipsub-bare: go-libp2p-pubsub with default options, no validation
//     or storage (a naive port: signed messages, queues of 32);
//   - seed-dial: the design gossipchain replaces: per block, dial every
//     known peer over TCP, send JSON, close;
//   - floor: one persistent libp2p stream between two hosts (one hop).

// benchResult is one line of the suite's output.
type benchResult struct {
	Scenario string `json:"scenario"`
	System   string `json:"system"`
	// Mode is "processes" for scripts/bench.sh --processes (every node
	// its own process), empty for the in-process suite.
	Mode  string `json:"mode,omitempty"`
	Nodes int    `json:"nodes"`
	// PeersEach is how many earlier nodes each node was given to dial
	// (process mode; the in-process suite gives 8).
	PeersEach    int      `json:"peers_each,omitempty"`
	Blocks       int      `json:"blocks,omitempty"`
	DeliveredPct *float64 `json:"delivered_pct,omitempty"` // nil: not a delivery scenario
	P50ms        float64  `json:"p50_ms,omitempty"`
	P99ms        float64  `json:"p99_ms,omitempty"`
	Maxms        float64  `json:"max_ms,omitempty"`
	BlocksPerS   float64  `json:"blocks_per_s,omitempty"`
	// OriginBytesPerBlock is what the origin sent per block (payload bytes
	// on its connections, all protocols).
	OriginBytesPerBlock float64 `json:"origin_bytes_per_block,omitempty"`
	RSSMiB              float64 `json:"rss_mib,omitempty"`
	HeapMiBPerHost      float64 `json:"heap_mib_per_host,omitempty"`
	// CPUmsPerBlock is the CPU time the whole process (every node, and
	// the harness) spent per block while the scenario ran: on a shared
	// machine, what the latencies above are paid with.
	CPUmsPerBlock float64 `json:"cpu_ms_per_block,omitempty"`
	// IdleCPUPct is the share of a core each node process used with
	// nothing published (process mode's propagation).
	IdleCPUPct float64 `json:"idle_cpu_pct,omitempty"`
	// chainlen: start to ready file on an existing store, the store's
	// bytes per block, GET /blocks?from=<head-100>&limit=100.
	RestartMs     float64 `json:"restart_ms,omitempty"`
	BytesPerBlock float64 `json:"bytes_per_block,omitempty"`
	APIms         float64 `json:"api_ms,omitempty"`
	// Stages: where gossipchain's blocks waited (process mode).
	Stages *benchStages `json:"stages,omitempty"`
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerBlock is the CPU time used since start, in ms per block.
func cpuPerBlock(start time.Duration, blocks int) float64 {
	return round2(float64((cpuTime() - start).Microseconds()) / 1000 / float64(blocks))
}

// benchSystem is one way of getting a block from an origin to n-1 others.
type benchSystem interface {
	// publish sends payload (which starts with the block's sequence
	// number and a '|') from node origin.
	publish(origin int, payload string) error
	close()
}

// pipeliner is a system that takes a block before acknowledging it: a
// writer with many blocks posts the next while earlier ones are confirmed.
type pipeliner interface {
	post(origin int, payload string) (wait func() error, err error)
}

// arrivals collects when each node first saw each block.
type arrivals struct {
	mu   sync.Mutex
	sent map[int]time.Time
	seen map[[2]int]time.Time // {seq, node}
	// counted is, per node, how many counted (non-negative) blocks it has
	// seen: the process mode asks often while a scenario runs.
	counted map[int]int
}

func newArrivals() *arrivals {
	return &arrivals{sent: map[int]time.Time{}, seen: map[[2]int]time.Time{}, counted: map[int]int{}}
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
		if seq >= 0 {
			a.counted[node]++
		}
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
	if os.Getenv("GOSSIPCHAIN_BENCH_TAIL") != "" {
		a.printTail(system, nodes, lat)
	}
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return round2(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	r := benchResult{Scenario: scenario, System: system, Nodes: nodes, Blocks: blocks,
		DeliveredPct: percent(100 * float64(len(lat)) / float64(blocks*(nodes-1)))}
	r.P50ms, r.P99ms = pct(0.50), pct(0.99)
	if len(lat) > 0 {
		r.Maxms = round2(lat[len(lat)-1])
	}
	return r
}

// benchStart is when the suite's process started, for GOSSIPCHAIN_BENCH_TAIL.
var benchStart = time.Now()

// printTail prints, for GOSSIPCHAIN_BENCH_TAIL, the arrivals at or above
// the 99th percentile (lat, sorted) with when their block was published,
// in seconds since the process started: the clock of GODEBUG=gctrace=1's
// "@12.345s", so the slowest blocks can be lined up with GC cycles (or
// any other periodic work). a.mu is held.
func (a *arrivals) printTail(system string, nodes int, lat []float64) {
	if len(lat) == 0 {
		return
	}
	p99 := lat[min(len(lat)-1, int(0.99*float64(len(lat))))]
	for k, at := range a.seen {
		if sent, ok := a.sent[k[0]]; ok && k[0] >= 0 {
			if l := float64(at.Sub(sent).Microseconds()) / 1000; l >= p99 {
				fmt.Fprintf(os.Stderr, "TAIL %s nodes=%d block=%d node=%d published=@%.3fs ms=%.2f\n", system, nodes, k[0], k[1], sent.Sub(benchStart).Seconds(), l)
			}
		}
	}
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// percent is a percentage for benchResult.DeliveredPct.
func percent(v float64) *float64 { v = round2(v); return &v }

const benchData = "a line typed on a console, about as long as people type"

// wiring gives each node i > 0 up to 8 random earlier nodes to connect to,
// the same for every system that has a network (a connected graph).
func wiring(n int, rng *rand.Rand) [][]int { return wiringEach(n, denseWiring, rng) }

// denseWiring and sparseWiring are how many earlier nodes each new node is
// given: the suite's own wiring, and a network grown from a few bootstrap
// addresses (the process mode runs both).
const (
	denseWiring  = 8
	sparseWiring = 3
)

// wiringEach gives node i up to k random earlier nodes to dial.
func wiringEach(n, k int, rng *rand.Rand) [][]int {
	out := make([][]int, n)
	for i := 1; i < n; i++ {
		perm := rng.Perm(i)
		out[i] = perm[:min(i, k)]
	}
	return out
}

// --- gossipchain -----------------------------------------------------------

type gossipchainSystem struct {
	nodes []*Node
	wg    sync.WaitGroup
}

func startGossipchain(t *testing.T, n int, arr *arrivals, wires [][]int, origin libp2pmetrics.Reporter) *gossipchainSystem {
	s := &gossipchainSystem{}
	for i := 0; i < n; i++ {
		// No author budget: the burst measures how fast blocks spread, not
		// the 200/s a node allows one author by default.
		cfg := Config{DataDir: t.TempDir(), AuthorRate: -1}
		if i == 0 {
			cfg.HostOptions = []libp2p.Option{libp2p.BandwidthReporter(origin)}
		}
		for _, j := range wires[i] {
			cfg.Peers = append(cfg.Peers, peer.AddrInfo{ID: s.nodes[j].ID(), Addrs: s.nodes[j].host.Addrs()})
		}
		node, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, node)
		// Arrival = on the main chain, by gossip or by sync: announced
		// blocks at once, long syncs (announced by their head) by polling.
		events, _ := node.Subscribe()
		if i == 0 {
			continue // the origin: its blocks are its own
		}
		s.wg.Add(2)
		go func(i int) {
			defer s.wg.Done()
			for e := range events {
				if e.Type == "block" && e.Origin != "local" {
					arr.arrived(i, e.Block.Data)
				}
			}
		}(i)
		go func(i int, n *Node) {
			defer s.wg.Done()
			var last uint64
			for n.ctx.Err() == nil {
				if h := n.Chain().Height(); h > last {
					blocks, _ := n.Chain().Range(last+1, int(h-last))
					for _, b := range blocks {
						arr.arrived(i, b.Data)
					}
					last = h
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(i, node)
	}
	waitMesh(t, s.nodes...)
	return s
}

func (s *gossipchainSystem) publish(origin int, payload string) error {
	_, err := s.nodes[origin].Append(context.Background(), payload)
	return err
}

func (s *gossipchainSystem) post(origin int, payload string) (func() error, error) {
	r, err := s.nodes[origin].Post(context.Background(), payload)
	if err != nil {
		return nil, err
	}
	return func() error { _, err := r.Wait(); return err }, nil
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
	tuned  bool
}

// tunedOptions is GossipSub as a careful engineer configures it for
// blocks that carry their own signatures: no message signing, content
// IDs, queues that hold a burst, flood publishing (gossipchain's own
// settings, gossip.go), with nothing checked or stored.
func tunedOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			sum := sha256.Sum256(m.Data)
			return hex.EncodeToString(sum[:])
		}),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(protocol.MaxGossipRPCBytes),
	}
}

// startBare starts gossipsub-bare (the library's defaults) or, tuned,
// gossipsub-tuned (tunedOptions, with gossipchain-sized messages).
func startBare(t *testing.T, n int, arr *arrivals, wires [][]int, origin libp2pmetrics.Reporter, tuned bool) *bareSystem {
	ctx, cancel := context.WithCancel(context.Background())
	s := &bareSystem{cancel: cancel, tuned: tuned}
	for i := 0; i < n; i++ {
		opts := []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics()}
		if i == 0 && origin != nil {
			opts = append(opts, libp2p.BandwidthReporter(origin))
		}
		h, err := libp2p.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		topic, sub, err := joinBench(ctx, h, tuned)
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
					arr.arrived(i, tutorialData(m.Data))
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

// joinBench starts GossipSub on h, tuned (tunedOptions, subscription
// queue of subscriptionQueue) or with the library's defaults (signed
// messages, queues of 32), and subscribes to the bench topic.
func joinBench(ctx context.Context, h host.Host, tuned bool) (*pubsub.Topic, *pubsub.Subscription, error) {
	var opts []pubsub.Option
	var subOpts []pubsub.SubOpt
	if tuned {
		opts, subOpts = tunedOptions(), []pubsub.SubOpt{pubsub.WithBufferSize(subscriptionQueue)}
	}
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		return nil, nil, err
	}
	topic, err := ps.Join("bench")
	if err != nil {
		return nil, nil, err
	}
	sub, err := topic.Subscribe(subOpts...)
	return topic, sub, err
}

func (s *bareSystem) publish(origin int, payload string) error {
	if s.tuned {
		return s.topics[origin].Publish(context.Background(), sizedBlock(payload))
	}
	return s.topics[origin].Publish(context.Background(), tutorialBlock(payload))
}

// sizedBlock wraps payload in a message as large as a gossipchain block
// carrying it (a signed block's JSON: about 430 bytes for a short line).
func sizedBlock(payload string) []byte {
	b, _ := json.Marshal(struct {
		Data string
		Pad  string
	}{payload, strings.Repeat("x", max(0, gossipchainBlockBytes(payload)-len(payload)-20))})
	return b
}

// gossipchainBlockBytes is the size of the gossip message of a block with
// data payload.
func gossipchainBlockBytes(payload string) int {
	const fixed = len(`{"index":1000,"timestamp":1767225600000,"data":"","prevHash":"","author":"","hash":"","signature":""}`) + 64 + 52 + 64 + 128
	return fixed + len(payload)
}

// tutorialBlock wraps payload in a block as the design gossipchain replaces
// sent it (index, timestamp, data, hash, previous hash: about 225 bytes of
// JSON), so gossipsub-bare and seed-dial carry blocks of that size.
func tutorialBlock(payload string) []byte {
	b, _ := json.Marshal(struct {
		Index     int
		Timestamp string
		Data      string
		Hash      string
		PrevHash  string
	}{0, time.Now().Format(time.RFC3339), payload, strings.Repeat("ab", 32), strings.Repeat("cd", 32)})
	return b
}

// tutorialData returns the payload of a tutorial block (or data itself).
func tutorialData(data []byte) string {
	var b struct{ Data string }
	if json.Unmarshal(data, &b) == nil && b.Data != "" {
		return b.Data
	}
	return string(data)
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
	lns  []net.Listener
	wg   sync.WaitGroup
	sent int64 // bytes the origin wrote
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
					if data, err := io.ReadAll(io.LimitReader(c, 1<<16)); err == nil {
						arr.arrived(i, tutorialData(data))
					}
				}()
			}
		}(i)
	}
	return s
}

func (s *seedDialSystem) publish(origin int, payload string) error {
	msg := tutorialBlock(payload)
	for i, ln := range s.lns {
		if i == origin {
			continue
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		n, err := c.Write(msg)
		s.sent += int64(n)
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
	waitDelivered(arr, blocks*(nodes-1))
}

// waitDelivered waits until want arrivals are in, or none has come for 5 s
// (what is lost stays lost), or a minute has passed.
func waitDelivered(arr *arrivals, want int) {
	deadline := time.Now().Add(time.Minute)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		got := arr.count()
		if got >= want || time.Since(lastChange) > 5*time.Second {
			return
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// burst publishes blocks from node 0 as fast as it takes them and reports
// how long until every node held every block (or the deadline passed). A
// system that confirms blocks after taking them is given the next block
// while it confirms earlier ones (at most 1,024 unconfirmed), as a client
// with many lines would.
func burst(t *testing.T, sys benchSystem, arr *arrivals, nodes, blocks int) time.Duration {
	start := time.Now()
	if p, ok := sys.(pipeliner); ok {
		waits := make(chan func() error, 1024)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for wait := range waits {
				if err := wait(); err != nil {
					t.Errorf("confirm: %v", err)
				}
			}
		}()
		for seq := 0; seq < blocks; seq++ {
			arr.published(seq)
			wait, err := p.post(0, fmt.Sprintf("%d|%s", seq, benchData))
			if err != nil {
				t.Errorf("post %d: %v", seq, err)
				break
			}
			waits <- wait
		}
		close(waits)
		<-done
	} else {
		for seq := 0; seq < blocks; seq++ {
			arr.published(seq)
			if err := sys.publish(0, fmt.Sprintf("%d|%s", seq, benchData)); err != nil {
				t.Errorf("publish %d: %v", seq, err)
				break
			}
		}
	}
	waitDelivered(arr, blocks*(nodes-1))
	return arr.last().Sub(start)
}

// last returns the latest arrival.
func (a *arrivals) last() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var t time.Time
	for k, at := range a.seen {
		if k[0] >= 0 && at.After(t) {
			t = at
		}
	}
	return t
}

// startSystem starts system name with n nodes.
func startSystem(t *testing.T, name string, n int, arr *arrivals, wires [][]int, origin libp2pmetrics.Reporter) benchSystem {
	switch name {
	case "gossipchain":
		return startGossipchain(t, n, arr, wires, origin)
	case "gossipsub-bare":
		return startBare(t, n, arr, wires, origin, false)
	case "gossipsub-tuned":
		return startBare(t, n, arr, wires, origin, true)
	}
	return startSeedDial(t, n, arr)
}

// report prints r for scripts/bench.sh. gossipchain promises every block
// to every node, in every scenario: less fails the suite (its times are
// only reported, never judged).
func report(t *testing.T, r benchResult) {
	line, _ := json.Marshal(r)
	fmt.Printf("BENCH %s\n", line)
	reported = append(reported, r)
	if r.System == "gossipchain" && r.DeliveredPct != nil && *r.DeliveredPct != 100 {
		t.Errorf("%s at %d nodes: gossipchain delivered %.2f%% of blocks, want 100%%", r.Scenario, r.Nodes, *r.DeliveredPct)
	}
}

// heapMiB is the live heap after a collection.
func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// idleRSS runs one node process for a few seconds and returns its
// resident memory in MiB.
func idleRSS(t *testing.T) float64 {
	n := harness.StartTB(t, harness.Config{})
	time.Sleep(3 * time.Second) // idle means running a while with nothing to do
	return rssMiB(t, n.Pid())
}

// rssMiB returns the resident memory of process pid in MiB.
func rssMiB(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
			return round2(kb / 1024)
		}
	}
	return 0
}

// envCounts reads a comma-separated list of counts of at least min from the
// environment variable name; nil if it is unset.
func envCounts(t *testing.T, name string, min int) []int {
	s := os.Getenv(name)
	if s == "" {
		return nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < min {
			t.Fatalf("%s: %q is not a count of %d or more", name, f, min)
		}
		out = append(out, n)
	}
	return out
}

// reported holds the suite's results so far, for the ratios.
var reported []benchResult

// benchRatio is gossipchain's figure over gossipsub-tuned's in one
// scenario and size: how far from the library's floor, configured well.
type benchRatio struct {
	Scenario   string   `json:"scenario"`
	Nodes      int      `json:"nodes"`
	PeersEach  int      `json:"peers_each,omitempty"`
	P50        *float64 `json:"p50_x,omitempty"`
	P99        *float64 `json:"p99_x,omitempty"`
	BlocksPerS *float64 `json:"blocks_per_s_x,omitempty"`
	CPU        *float64 `json:"cpu_x,omitempty"`
	Origin     *float64 `json:"origin_bytes_x,omitempty"`
}

// reportRatios prints, for every result of gossipchain with a
// gossipsub-tuned one beside it, the ratios of their figures.
func reportRatios() {
	ratio := func(a, b float64) *float64 {
		if a == 0 || b == 0 {
			return nil
		}
		v := round2(a / b)
		return &v
	}
	for _, g := range reported {
		if g.System != "gossipchain" {
			continue
		}
		for _, o := range reported {
			if o.System != "gossipsub-tuned" || o.Scenario != g.Scenario || o.Nodes != g.Nodes || o.PeersEach != g.PeersEach {
				continue
			}
			r := benchRatio{Scenario: g.Scenario, Nodes: g.Nodes, PeersEach: g.PeersEach, P50: ratio(g.P50ms, o.P50ms), P99: ratio(g.P99ms, o.P99ms),
				BlocksPerS: ratio(g.BlocksPerS, o.BlocksPerS), CPU: ratio(g.CPUmsPerBlock, o.CPUmsPerBlock), Origin: ratio(g.OriginBytesPerBlock, o.OriginBytesPerBlock)}
			line, _ := json.Marshal(r)
			fmt.Printf("RATIO %s\n", line)
		}
	}
}

// benchChoice reads GOSSIPCHAIN_BENCH_ONLY, which names scenarios and
// systems to run (an empty choice of either means all of them), against
// the systems a suite has: run tells whether a scenario is chosen, chosen
// is the systems to run, and narrowed whether any were named.
func benchChoice(systems ...string) (run func(scenario string) bool, chosen []string, narrowed bool) {
	scenarios := map[string]bool{}
	for _, s := range strings.Split(os.Getenv("GOSSIPCHAIN_BENCH_ONLY"), ",") {
		if slices.Contains(systems, s) {
			chosen = append(chosen, s)
		} else if s != "" {
			scenarios[s] = true
		}
	}
	narrowed = len(chosen) > 0
	if !narrowed {
		chosen = systems
	}
	return func(scenario string) bool { return len(scenarios) == 0 || scenarios[scenario] }, chosen, narrowed
}

func TestBenchSuite(t *testing.T) {
	defer reportRatios()
	mode := os.Getenv("GOSSIPCHAIN_BENCH")
	if mode == "" {
		t.Skip("benchmark suite: run scripts/bench.sh (or set GOSSIPCHAIN_BENCH=quick|full)")
	}
	quick := mode == "quick"
	sizes, blocks, burstBlocks, burstNodes, egressNodes, scaleNodes, syncBlocks := []int{3, 10, 25}, 300, 10000, 10, 25, 100, 10000
	if quick {
		sizes, blocks, burstBlocks, burstNodes, egressNodes, scaleNodes, syncBlocks = []int{3, 10}, 100, 1000, 10, 10, 0, 2000
	}
	if s := envCounts(t, "GOSSIPCHAIN_BENCH_SIZES", 2); s != nil { // profiling one size
		sizes = s
	}
	const rate = 100
	run, systems, narrowed := benchChoice("gossipchain", "gossipsub-tuned", "gossipsub-bare", "seed-dial")

	// propagation: paced blocks from one origin; at egressNodes, also what
	// the origin sends per block.
	for _, n := range sizes {
		if !run("propagation") {
			break
		}
		wires := wiring(n, rand.New(rand.NewPCG(1, uint64(n))))
		for _, name := range systems {
			arr := newArrivals()
			bw := libp2pmetrics.NewBandwidthCounter()
			before := heapMiB()
			sys := startSystem(t, name, n, arr, wires, bw)
			heap := heapMiB() - before
			out0, cpu0 := bw.GetBandwidthTotals().TotalOut, cpuTime()
			propagate(t, sys, arr, n, blocks, rate)
			r := arr.result("propagation", name, n, blocks)
			r.CPUmsPerBlock = cpuPerBlock(cpu0, blocks)
			if n == egressNodes {
				switch s := sys.(type) {
				case *seedDialSystem:
					r.OriginBytesPerBlock = round2(float64(s.sent) / float64(blocks))
				default:
					r.OriginBytesPerBlock = round2(float64(bw.GetBandwidthTotals().TotalOut-out0) / float64(blocks))
				}
				if name != "seed-dial" {
					r.HeapMiBPerHost = round2(heap / float64(n))
				}
			}
			sys.close()
			report(t, r)
		}
	}
	if run("propagation") && !narrowed {
		arr := newArrivals()
		floor := startFloor(t, arr)
		propagate(t, floor, arr, 2, blocks, rate)
		floor.close()
		report(t, arr.result("propagation", "floor", 2, blocks))
	}

	// burst: as fast as the origin takes them.
	wires := wiring(burstNodes, rand.New(rand.NewPCG(2, uint64(burstNodes))))
	for _, name := range systems {
		if !run("burst") {
			break
		}
		arr := newArrivals()
		sys := startSystem(t, name, burstNodes, arr, wires, nil)
		cpu0 := cpuTime()
		took := burst(t, sys, arr, burstNodes, burstBlocks)
		cpu := cpuPerBlock(cpu0, burstBlocks)
		sys.close()
		r := arr.result("burst", name, burstNodes, burstBlocks)
		r.CPUmsPerBlock = cpu
		r.BlocksPerS = round2(float64(burstBlocks) * *r.DeliveredPct / 100 / took.Seconds())
		report(t, r)
	}

	// sync: a late joiner fetching syncBlocks from one peer (gossipchain
	// only: the other two have no way to catch up).
	if run("sync") {
		// The median of three fresh joiners: one sync is half a second.
		src := syncSource(t, syncBlocks)
		var times []time.Duration
		for range 3 {
			times = append(times, syncOnce(t, src))
		}
		src.Close()
		slices.Sort(times)
		took := times[1]
		report(t, benchResult{Scenario: "sync", System: "gossipchain", Nodes: 2, Blocks: syncBlocks, DeliveredPct: percent(100), BlocksPerS: round2(float64(syncBlocks) / took.Seconds())})
	}

	// scale: many gossipchain hosts, paced blocks.
	if scaleNodes > 0 && run("scale") {
		arr := newArrivals()
		sys := startGossipchain(t, scaleNodes, arr, wiring(scaleNodes, rand.New(rand.NewPCG(3, 3))), nil)
		propagate(t, sys, arr, scaleNodes, 100, 20)
		sys.close()
		report(t, arr.result("scale", "gossipchain", scaleNodes, 100))
	}

	// footprint: an idle node process.
	if run("footprint") {
		report(t, benchResult{Scenario: "footprint", System: "gossipchain", Nodes: 1, RSSMiB: idleRSS(t)})
	}

	// chainlen: a node's cost as its chain grows.
	if run("chainlen") {
		bin := harness.Binary(t)
		lengths := []int{10_000, 100_000, 1_000_000}
		if quick {
			lengths = lengths[:2]
		}
		if l := envCounts(t, "GOSSIPCHAIN_BENCH_CHAINLEN", 1000); l != nil { // profiling one length
			lengths = l
		}
		histories := []history{backDated, recent}
		switch h := history(os.Getenv("GOSSIPCHAIN_BENCH_CHAINLEN_HISTORY")); h {
		case backDated, recent:
			histories = []history{h}
		case "", "both":
		default:
			t.Fatalf("GOSSIPCHAIN_BENCH_CHAINLEN_HISTORY=%q: want old, now or both", h)
		}
		for _, n := range lengths {
			for _, h := range histories {
				report(t, chainLength(t, bin, n, h))
			}
		}
	}
}

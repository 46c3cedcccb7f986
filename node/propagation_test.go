package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// hops follows a trace's "from" back to the author through nodes' traces.
func hops(t *testing.T, hash string, n *Node, byID map[string]*Node) int {
	t.Helper()
	for hop := 0; hop < 10; hop++ {
		tr, ok := n.Trace(hash)
		if !ok {
			t.Fatalf("node %s has no trace of %s", n.ID(), hash)
		}
		if tr.From == "" {
			return hop
		}
		if n = byID[tr.From]; n == nil {
			t.Fatalf("trace names %s, not one of the nodes", tr.From)
		}
	}
	t.Fatal("traces loop")
	return 0
}

// A block typed on A of a line A - B - C: C's trace says it came from B
// by gossip, two hops from the author; each node names whom it sent it
// to; C's peers' traces come over the sync protocol; a late joiner's
// trace says sync.
func TestTraceAlongALine(t *testing.T) {
	ga, gc := &cutGater{}, &cutGater{}
	a := startNodeWith(t, Config{Gater: ga})
	b := startNode(t, "", a)
	c := startNodeWith(t, Config{Gater: gc}, b)
	ga.set(c.ID(), true)
	gc.set(a.ID(), true)
	waitMesh(t, a, b, c)
	waitFor(t, 20*time.Second, "b meshed with a and c", func() bool { return b.MeshPeers() == 2 })
	byID := map[string]*Node{a.ID().String(): a, b.ID().String(): b, c.ID().String(): c}

	p, err := a.Append(context.Background(), "traced")
	if err != nil {
		t.Fatal(err)
	}
	hash := p.Block.Hash
	waitFor(t, 20*time.Second, "c to have the block", func() bool { return c.Chain().Has(hash) })
	waitFor(t, 10*time.Second, "b to have sent it on to c", func() bool {
		tr, _ := b.Trace(hash)
		return tr != nil && slices.Contains(tr.ForwardedTo, c.ID().String())
	})
	ta, _ := a.Trace(hash)
	tb, _ := b.Trace(hash)
	tc, ok := c.Trace(hash)
	switch {
	case ta.Via != OriginLocal || ta.From != "" || !slices.Contains(ta.ForwardedTo, b.ID().String()):
		t.Errorf("a's trace %+v: want typed here, sent to b", ta)
	case tb.Via != OriginGossip || tb.From != a.ID().String() || tb.HandleUS <= 0 || tb.RelayUS <= 0:
		t.Errorf("b's trace %+v: want from a by gossip, with its handling and relay times", tb)
	case tb.QueueUS <= 0 || tb.CheckUS <= 0 || tb.ParentUS <= 0 || tb.StoreUS <= 0 || tb.QueueUS+tb.CheckUS+tb.ParentUS+tb.StoreUS > tb.HandleUS+4:
		t.Errorf("b's trace %+v: want its stages, adding up to its handling time", tb)
	case !ok || tc.Via != OriginGossip || tc.From != b.ID().String():
		t.Errorf("c's trace %+v: want from b by gossip", tc)
	case tc.Index != 1 || tc.Author != a.ID().String() || tc.FirstSeenMS < ta.FirstSeenMS || tc.DelayMS < 0:
		t.Errorf("c's trace %+v: block or times wrong (a first saw it at %d)", tc, ta.FirstSeenMS)
	}
	if h := hops(t, hash, c, byID); h != 2 {
		t.Errorf("c is %d hops from the author, want 2", h)
	}
	// C asks its peers (only b) over the sync protocol.
	pt := c.PeerTraces(context.Background(), hash)
	if len(pt) != 1 || pt[0].ID != b.ID().String() || pt[0].Trace == nil || pt[0].Trace.From != a.ID().String() {
		t.Fatalf("c's peers' traces: %+v; want b's, from a", pt)
	}
	// A block it never had: unknown, from the node and from its peers.
	other := strings.Repeat("ab", 32)
	if _, ok := c.Trace(other); ok {
		t.Error("c has a trace of a block it never had")
	}
	if pt := c.PeerTraces(context.Background(), other); len(pt) != 1 || !pt[0].Unknown || pt[0].Error != "" {
		t.Errorf("b's answer for an unknown block: %+v", pt)
	}

	late := startNode(t, "", a)
	waitFor(t, 20*time.Second, "the late joiner to sync the block", func() bool { return late.Chain().Has(hash) })
	if tl, ok := late.Trace(hash); !ok || tl.Via != OriginSync || byID[tl.From] == nil {
		t.Errorf("late joiner's trace %+v: want via sync from one of the nodes", tl)
	}
	if st := c.Status(); st.Propagation.Blocks != 1 || st.Propagation.P50MS < 0 {
		t.Errorf("c's propagation summary %+v: want one block", st.Propagation)
	}
}

// In a triangle, the author floods its block to both peers and each relays
// it once (to the peer it did not get it from): four copies for two nodes
// that lacked it, so two duplicates in all, counted and named where they
// arrived. IDONTWANT is off here: on one machine a peer's IDONTWANT
// often comes before its neighbour has checked the block, which then
// sends no copy to count.
func TestTraceCountsDuplicates(t *testing.T) {
	params := gossipParams()
	params.IDontWantMessageThreshold = protocol.MaxGossipRPCBytes + 1
	cfg := func() Config { return Config{GossipOptions: []pubsub.Option{pubsub.WithGossipSubParams(params)}} }
	x := startNodeWith(t, cfg())
	y := startNodeWith(t, cfg(), x)
	z := startNodeWith(t, cfg(), x, y)
	nodes := []*Node{x, y, z}
	waitFor(t, 20*time.Second, "a full mesh of three", func() bool {
		return x.MeshPeers() == 2 && y.MeshPeers() == 2 && z.MeshPeers() == 2
	})
	p, err := x.Append(context.Background(), "heard twice")
	if err != nil {
		t.Fatal(err)
	}
	hash := p.Block.Hash
	total := func() int {
		sum := 0
		for _, n := range nodes {
			if tr, ok := n.Trace(hash); ok {
				sum += tr.Duplicates
			}
		}
		return sum
	}
	waitFor(t, 20*time.Second, "two duplicates counted", func() bool { return total() >= 2 })
	for _, n := range nodes {
		tr, _ := n.Trace(hash)
		if len(tr.Copies) != tr.Duplicates {
			t.Errorf("%s: %d duplicates, %d named", n.ID(), tr.Duplicates, len(tr.Copies))
		}
		for _, c := range tr.Copies {
			if c.From == n.ID().String() || c.From == tr.From || c.AfterMS < 0 {
				t.Errorf("%s: copy %+v (first from %q): a copy comes from another peer than the first, after it", n.ID(), c, tr.From)
			}
		}
	}
	if tx, _ := x.Trace(hash); len(tx.ForwardedTo) != 2 {
		t.Errorf("the author's trace %+v: it flooded the block to both peers", tx)
	}
}

// The trace book stays bounded whatever comes, and so does its answer.
func TestTraceBookBounded(t *testing.T) {
	tb := newTraceBook(nil)
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	parent := ledger.Genesis()
	var first *ledger.Block
	for i := range protocol.MaxTraces + 100 {
		b, err := s.Sign(parent, fmt.Sprintf("b%d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		msg := &pubsub.Message{Message: &pb.Message{Data: []byte(b.Hash)}, ID: "id-" + b.Hash}
		now := time.Now()
		tb.gossiped(b, msg, peer.ID(fmt.Sprintf("p%d", i)), &stages{named: now, start: now, checked: now, parent: now, stored: now.Add(time.Millisecond)})
		if first == nil {
			first = b
			for j := range 3 * protocol.MaxTraceCopies {
				tb.DuplicateMessage(&pubsub.Message{ID: msg.ID, ReceivedFrom: peer.ID(fmt.Sprintf("dup%d", j))})
			}
			for j := range 3 * protocol.MaxTraceForwards {
				tb.SendRPC(&pubsub.RPC{RPC: pb.RPC{Publish: []*pb.Message{msg.Message}}}, peer.ID(fmt.Sprintf("to%d", j)))
			}
			tr, _ := tb.get(b.Hash)
			if tr.Duplicates != 3*protocol.MaxTraceCopies || len(tr.Copies) != protocol.MaxTraceCopies || len(tr.ForwardedTo) != protocol.MaxTraceForwards {
				t.Fatalf("trace: %d duplicates, %d named, %d forwards", tr.Duplicates, len(tr.Copies), len(tr.ForwardedTo))
			}
			// The largest answer fits its frame, with real peer IDs.
			big := *tr
			id := s.ID()
			for k := range big.Copies {
				big.Copies[k].From = id
			}
			for k := range big.ForwardedTo {
				big.ForwardedTo[k] = id
			}
			big.From = id
			if raw, _ := json.Marshal(protocol.TraceAnswer{Known: true, Trace: &big}); len(raw) > protocol.MaxTraceAnswerBytes {
				t.Fatalf("the largest trace answer is %d bytes, frame limit %d", len(raw), protocol.MaxTraceAnswerBytes)
			}
		}
		parent = b
	}
	tb.mu.Lock()
	n, msgs, ptrs := len(tb.byHash), len(tb.byMsg), len(tb.byPtr)
	tb.mu.Unlock()
	if n != protocol.MaxTraces || msgs != protocol.MaxTraces || ptrs != protocol.MaxTraces {
		t.Fatalf("%d traces, %d message IDs, %d messages kept; bound %d", n, msgs, ptrs, protocol.MaxTraces)
	}
	if _, ok := tb.get(first.Hash); ok {
		t.Fatal("the oldest trace is still kept")
	}
}

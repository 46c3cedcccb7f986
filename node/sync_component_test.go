package node

import (
	"bufio"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// syncRig is one syncer on a bare host and a chain of its own, with what
// it tells the rest of the node recorded.
type syncRig struct {
	host  host.Host
	chain *ledger.Chain
	s     *syncer

	mu      sync.Mutex // guards the fields below
	drops   map[string]int
	added   int
	reports []SyncProgress
	relayed []*ledger.Block
}

func newSyncRig(t *testing.T) *syncRig {
	t.Helper()
	chain, err := ledger.Open(t.TempDir()+"/chain.db", ledger.WithSettle(0))
	if err != nil {
		t.Fatal(err)
	}
	r := &syncRig{host: bareHost(t), chain: chain, drops: map[string]int{}}
	counters := func(labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test"}, labels)
	}
	r.s = newSyncer(syncDeps{
		host: r.host, chain: chain, log: slog.New(slog.DiscardHandler), timeout: 5 * time.Second,
		drop: func(reason string) { r.mu.Lock(); r.drops[reason]++; r.mu.Unlock() },
		made: counters("type", "result"), served: counters("type"),
		budget:   newAuthorBudget(-1, 0, nil),
		score:    func(peer.ID) (float64, bool) { return 0, false },
		dialing:  func() int { return 0 },
		added:    func(res ledger.Result, _ peer.ID) { r.mu.Lock(); r.added += len(res.Added); r.mu.Unlock() },
		trace:    func(string) (*protocol.Trace, bool) { return nil, false },
		report:   func(p SyncProgress) { r.mu.Lock(); r.reports = append(r.reports, p); r.mu.Unlock() },
		relay:    func(b *ledger.Block) { r.mu.Lock(); r.relayed = append(r.relayed, b); r.mu.Unlock() },
		reappend: func() {},
	})
	r.s.start()
	t.Cleanup(func() {
		r.s.stop()
		chain.Close()
	})
	return r
}

func (r *syncRig) connect(t *testing.T, to host.Host) {
	t.Helper()
	if err := r.host.Connect(context.Background(), peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func (r *syncRig) dropped(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops[reason]
}

// The syncer alone, on bare hosts: a newcomer fetches a chain longer than
// one answer from a peer that has it, reports the sync and relays the head
// it reached; a peer that lies is banned, disconnected and counted; after
// stop the syncer serves nothing and its goroutines are gone.
func TestSyncComponent(t *testing.T) {
	const count = 2*protocol.MaxBlocksPerResponse + 300
	a, b := newSyncRig(t), newSyncRig(t)
	run := signRun(t, ledger.Genesis(), count)
	if _, err := a.chain.Add(run...); err != nil {
		t.Fatal(err)
	}
	b.connect(t, a.host) // the connection makes both exchange status
	waitFor(t, 30*time.Second, "b synced from a", func() bool { return b.chain.Head().Hash == a.chain.Head().Hash })
	got, err := b.chain.Range(0, count+1)
	if err != nil || len(got) != count+1 {
		t.Fatalf("b's main chain: %d blocks, %v", len(got), err)
	}
	for i, blk := range got[1:] {
		if blk.Hash != run[i].Hash {
			t.Fatalf("b's block %d is %s, a's %s", i+1, blk.Short(), run[i].Short())
		}
	}
	waitFor(t, 10*time.Second, "the sync reported done", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := len(b.reports)
		return n > 0 && b.reports[n-1].Done
	})
	b.mu.Lock()
	last := b.reports[len(b.reports)-1]
	if last.From != 0 || last.Height != count || last.Peer != a.host.ID() || b.added != count {
		t.Errorf("last report %+v, %d blocks added; want from 0 to %d from a, %d added", last, b.added, count, count)
	}
	if len(b.relayed) == 0 || b.relayed[len(b.relayed)-1].Hash != run[count-1].Hash {
		t.Errorf("relayed %d heads; want the last one to be the synced head", len(b.relayed))
	}
	b.mu.Unlock()
	if st, ok := b.s.head(a.host.ID()); !ok || st.Head != a.chain.Head().Hash || !b.s.member(a.host.ID()) {
		t.Errorf("b's view of a: %+v %v member %v", st, ok, b.s.member(a.host.ID()))
	}

	// A liar claims a better head and answers a fetch with a block that
	// does not decode.
	liar := bareHost(t)
	liar.SetStreamHandler(protocol.SyncID, func(st network.Stream) {
		defer st.Close()
		rd := bufio.NewReader(st)
		frame, err := protocol.ReadFrame(rd, protocol.MaxSyncRequestBytes)
		if err != nil {
			st.Reset()
			return
		}
		var req protocol.Request
		if protocol.UnmarshalStrict(frame, &req) != nil {
			st.Reset()
			return
		}
		claim := protocol.Status{Genesis: ledger.Genesis().Hash, Height: count + 10, Head: "00" + run[0].Hash[2:]}
		switch req.Type {
		case protocol.RequestStatus:
			protocol.WriteJSON(st, claim)
		case protocol.RequestBlocks:
			protocol.WriteJSON(st, protocol.BlocksHeader{Count: 1, Status: claim})
			protocol.WriteFrame(st, []byte(`{"index":"not a number"}`))
		default:
			protocol.WriteJSON(st, protocol.PeersAnswer{Peers: []protocol.PeerAddrs{}})
		}
	})
	b.connect(t, liar)
	waitFor(t, 30*time.Second, "the liar counted, banned and disconnected", func() bool {
		return b.dropped("sync_garbage") > 0 && b.s.faulty(liar.ID()) && b.host.Network().Connectedness(liar.ID()) != network.Connected
	})
	if b.chain.Head().Hash != a.chain.Head().Hash {
		t.Fatalf("b's head moved to %s after the liar", b.chain.Head().Short())
	}
	if b.s.trusted(liar.ID()) {
		t.Error("discovery would hand out the liar")
	}

	// Stopped: nothing served, nothing blocks.
	b.s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := a.host.NewStream(ctx, b.host.ID(), protocol.SyncID); err == nil {
		// The protocol is negotiated with the first bytes: a request, then
		// an answer that must not come.
		me := protocol.Status{Genesis: ledger.Genesis().Hash, Head: ledger.Genesis().Hash}
		protocol.WriteJSON(st, &protocol.Request{Type: protocol.RequestStatus, Status: &me})
		st.CloseWrite()
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		if frame, err := protocol.ReadFrame(bufio.NewReader(st), protocol.MaxSyncHeaderBytes); err == nil {
			t.Fatalf("a stopped syncer answered a status request: %s", frame)
		}
		st.Reset()
	}
	b.s.askStatus(a.host.ID())
	b.s.wake()
	b.s.headMoved()
	b.s.stop() // twice is fine
}

package chainsync

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// syncRig is one syncer on a bare host and a chain of its own, with what
// it tells the rest of the node recorded.
type syncRig struct {
	host  host.Host
	chain *ledger.Chain
	s     *Syncer

	mu      sync.Mutex // guards the fields below
	drops   map[string]int
	made    map[string]int // "type result"
	added   int
	reports []Progress
	relayed []*ledger.Block
}

// newSyncRig starts a syncer on a fresh bare host and chain, its deps
// changed by each of with, and closes it when the test ends.
func newSyncRig(t testing.TB, with ...func(*Deps)) *syncRig {
	t.Helper()
	chain, err := ledger.Open(t.TempDir()+"/chain.db", ledger.WithSettle(0))
	if err != nil {
		t.Fatal(err)
	}
	r := &syncRig{host: bareHost(t), chain: chain, drops: map[string]int{}, made: map[string]int{}}
	deps := Deps{
		Host: r.host, Chain: chain, Log: slog.New(slog.DiscardHandler), Timeout: 5 * time.Second,
		ConnLow: 64, DialTimeout: 5 * time.Second,
		Drop:     func(reason string) { r.mu.Lock(); r.drops[reason]++; r.mu.Unlock() },
		Metrics:  r,
		Budget:   noBudget{},
		Score:    func(peer.ID) (float64, bool) { return 0, false },
		Dialing:  func() int { return 0 },
		Added:    func(res ledger.Result, _ peer.ID) { r.mu.Lock(); r.added += len(res.Added); r.mu.Unlock() },
		Trace:    func(string) (*protocol.Trace, bool) { return nil, false },
		Report:   func(p Progress) { r.mu.Lock(); r.reports = append(r.reports, p); r.mu.Unlock() },
		Relay:    func(b *ledger.Block) { r.mu.Lock(); r.relayed = append(r.relayed, b); r.mu.Unlock() },
		Reappend: func() {},
	}
	for _, w := range with {
		w(&deps)
	}
	r.s = New(deps)
	r.s.Start()
	t.Cleanup(func() {
		r.s.Close()
		chain.Close()
	})
	return r
}

func (r *syncRig) RequestMade(kind, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made[kind+" "+result]++
}

func (r *syncRig) RequestServed(string) {}

func (r *syncRig) connect(t testing.TB, to host.Host) {
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

// noBudget is an author budget without limits.
type noBudget struct{}

func (noBudget) Young(*ledger.Block) bool                    { return false }
func (noBudget) Allow(*ledger.Block, peer.ID) (string, bool) { return "", true }

// bareHost is a libp2p host on a free loopback port, with nothing of
// gossipchain on it, closed when the test ends.
func bareHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

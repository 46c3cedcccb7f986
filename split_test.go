package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/protocol"
)

// TestLongSplitHeals: four node processes, a - b - c - d, split into a, b
// and c, d (each side blocks the other's peers through the API) for longer
// than the settle time, each side typing 5 lines a second, far past the
// finality depth. When the cut heals the halves become one chain by
// themselves, with every acknowledged line exactly once on every node: the
// longer branch is the members' (every node typed before the split), so
// the other half adopts it however deep it forks, and appends its own
// displaced lines again. GOSSIPCHAIN_SPLIT_SECONDS sets the split's length
// (default 25; the figure is 600, about 3,000 blocks a side).
func TestLongSplitHeals(t *testing.T) {
	seconds := 25
	if v := os.Getenv("GOSSIPCHAIN_SPLIT_SECONDS"); v != "" {
		if _, err := fmt.Sscan(v, &seconds); err != nil || seconds < 1 {
			t.Fatalf("GOSSIPCHAIN_SPLIT_SECONDS=%q: want a number of seconds", v)
		}
	}
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), b.addr)
	d := startProc(t, filepath.Join(dir, "d"), c.addr)
	procs := []*proc{a, b, c, d}
	waitMeshed(t, procs...)

	var (
		mu    sync.Mutex
		acked []string
	)
	typeOn := func(p *proc, line string) {
		if _, err := p.n.Append(line); err != nil {
			t.Errorf("POST %q: %v", line, err)
			return
		}
		mu.Lock()
		acked = append(acked, line)
		mu.Unlock()
	}
	// Every node writes a line first: the members of the shared history.
	for i, p := range procs {
		typeOn(p, fmt.Sprintf("before the split, node %d", i))
	}
	waitFor(t, 30*time.Second, "one chain before the split", func() bool { return honestConverged(t, acked, procs) == "" })

	sides := [][]*proc{{a, b}, {c, d}}
	setBlocked(t, sides, http.MethodPost)
	waitFor(t, 30*time.Second, "the halves apart", func() bool {
		return b.status(t).Peers == 1 && c.status(t).Peers == 1
	})
	t.Logf("split for %ds, each side typing 5 lines a second", seconds)
	var wg sync.WaitGroup
	for s, side := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			end := time.Now().Add(time.Duration(seconds) * time.Second)
			for i := 0; time.Now().Before(end); i++ {
				<-tick.C
				typeOn(side[i%2], fmt.Sprintf("side %d line %d", s, i))
			}
		}()
	}
	wg.Wait()
	heights := []uint64{a.status(t).Height, c.status(t).Height}
	setBlocked(t, sides, http.MethodDelete)
	healed := time.Now()
	if err := b.n.Call(http.MethodPost, "/peers", map[string]string{"addr": c.addr}, nil); err != nil {
		t.Fatalf("reconnect b to c: %v", err)
	}
	waitFor(t, 120*time.Second, "one chain after the heal", func() bool { return honestConverged(t, acked, procs) == "" },
		func() string { return honestConverged(t, acked, procs) })
	t.Logf("heights %d and %d when the cut healed; one chain of %d blocks, %d lines acknowledged, each once on every node, %.1fs after the heal",
		heights[0], heights[1], a.status(t).Height, len(acked), time.Since(healed).Seconds())
	for _, p := range procs {
		if r := p.status(t).RefusedBranches; len(r) != 0 {
			t.Errorf("%s still refuses %+v", p.n.ID(), r)
		}
	}
}

// setBlocked has every node of each side block (POST) or unblock
// (DELETE) the other side's nodes.
func setBlocked(t *testing.T, sides [][]*proc, method string) {
	t.Helper()
	for s, side := range sides {
		for _, p := range side {
			for _, q := range sides[1-s] {
				var err error
				if method == http.MethodPost {
					err = p.n.Call(method, "/peers/blocked", map[string]string{"id": q.n.ID()}, nil)
				} else {
					err = p.n.Call(method, "/peers/blocked/"+q.n.ID(), nil, nil)
				}
				if err != nil {
					t.Fatalf("%s /peers/blocked %s on %s: %v", method, q.n.ID(), p.n.ID(), err)
				}
			}
		}
	}
}

// TestOutsiderBranchRefused: what the deep-fork rule must keep. An outsider
// (its own key, which wrote none of the shared history) publishes a
// 300-block branch forking 100 settled blocks below the head into a line of
// three node processes: no node adopts it, every honest line stays on
// every chain exactly once, the nodes stay on one chain, and the node it
// reached says so (refused_branches).
func TestOutsiderBranchRefused(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), b.addr)
	procs := []*proc{a, b, c}
	waitMeshed(t, procs...)
	var lines []string
	for i := range 120 {
		line := fmt.Sprintf("honest %d", i)
		if _, err := procs[i%3].n.Append(line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	waitFor(t, 30*time.Second, "one chain", func() bool { return honestConverged(t, lines, procs) == "" })
	// Settled: on every main chain for the settle time.
	time.Sleep(ledger.DefaultSettle + time.Second) // the rule's own clock, not a wait for a condition
	chain := a.chain(t)
	fork := chain[len(chain)-1-100]
	topic := attackerTopic(t, a.addr)
	waitFor(t, 20*time.Second, "the outsider in a's mesh", func() bool {
		var peers []node.PeerInfo
		a.get(t, "/peers", &peers)
		for _, p := range peers {
			if p.Mesh && p.ID != b.n.ID() && p.ID != c.n.ID() {
				return true
			}
		}
		return false
	})
	outsider := ledger.NewSigner(ed25519.NewKeyFromSeed([]byte(strings.Repeat("o", 32))))
	parent := &fork
	for i := range 300 {
		blk, err := outsider.Sign(parent, fmt.Sprintf("rewrite %d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := protocol.EncodeBlock(blk)
		if err := topic.Publish(context.Background(), data); err != nil {
			t.Fatal(err)
		}
		parent = blk
	}
	waitFor(t, 30*time.Second, "a to refuse the branch", func() bool { return len(a.status(t).RefusedBranches) > 0 },
		func() string { return fmt.Sprintf("drops %v", a.status(t).Drops) })
	for i := range 6 {
		line := fmt.Sprintf("after %d", i)
		if _, err := procs[i%3].n.Append(line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	waitFor(t, 30*time.Second, "one chain with every honest line once", func() bool { return honestConverged(t, lines, procs) == "" },
		func() string { return honestConverged(t, lines, procs) })
	for _, p := range procs {
		for _, blk := range p.chain(t) {
			if blk.Author == outsider.ID() {
				t.Fatalf("%s holds the outsider's block %d on its main chain", p.n.ID(), blk.Index)
			}
		}
	}
	r := a.status(t).RefusedBranches[0]
	if r.ForkHash != fork.Hash || r.Members != 0 || r.Replace < 100 {
		t.Errorf("a reports %+v; want the fork at %d, no member blocks, at least 100 replaced", r, fork.Index)
	}
}

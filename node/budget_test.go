package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
)

// A valid-block flood: an attacker connected to a publishes thousands of
// validly signed blocks that extend the chain, with its own key, as fast as
// it can, while a and c type. Every honest line lands once on every node;
// of the attacker's blocks, no node stores more than its budget allows, so
// the third node (c, two hops away) gets no more than that either.
func TestAuthorBudget(t *testing.T) {
	const rate, burst, flood = 50, 100, 3000
	cfg := Config{AuthorRate: rate, AuthorBurst: burst}
	a := startNodeWith(t, cfg)
	b := startNodeWith(t, cfg, a)
	c := startNodeWith(t, cfg, b)
	waitMesh(t, a, b, c)
	attacker := newRawPublisher(t, a)
	key := ledger.NewSigner(ed25519.NewKeyFromSeed([]byte(strings.Repeat("f", 32))))
	// The attacker's chain, signed before the clock starts.
	var blocks [][]byte
	parent := a.Chain().Head()
	for i := range flood {
		blk, err := key.Sign(parent, fmt.Sprintf("flood %d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, mustJSON(t, blk))
		parent = blk
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range blocks {
			if attacker.topic.Publish(context.Background(), m) != nil {
				return
			}
		}
	}()
	var lines []string
	for i := range 20 {
		line := fmt.Sprintf("honest %d", i)
		if _, err := []*Node{a, c}[i%2].Append(context.Background(), line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	<-done
	// Converged: one head, every honest line exactly once (the attacker's
	// blocks within budget are on the chain too).
	waitFor(t, 30*time.Second, "one head with every honest line once", func() bool {
		head := a.Chain().Head()
		for _, n := range []*Node{b, c} {
			if n.Chain().Head().Hash != head.Hash || n.Chain().PendingLines() != 0 {
				return false
			}
		}
		return a.Chain().PendingLines() == 0 && honestOnce(t, a, lines) == ""
	})
	elapsed := time.Since(start)
	allowed := burst + int(float64(rate)*elapsed.Seconds()) + rate // one second of slack
	for name, n := range map[string]*Node{"a": a, "b": b, "c": c} {
		if why := honestOnce(t, n, lines); why != "" {
			t.Errorf("node %s: %s", name, why)
		}
		stored := countAuthor(t, n, key.ID())
		t.Logf("node %s: %d of the attacker's %d blocks on the chain (budget over %v: %d); drops %v", name, stored, flood, elapsed.Round(time.Millisecond), allowed, n.Drops())
		if stored > allowed {
			t.Errorf("node %s stored %d of the attacker's blocks, budget allows %d", name, stored, allowed)
		}
	}
	if a.Drops()["author_rate_limited"] == 0 {
		t.Errorf("a refused none of the attacker's blocks: drops %v", a.Drops())
	}
}

// honestOnce says which line is not on n's main chain exactly once.
func honestOnce(t *testing.T, n *Node, lines []string) string {
	t.Helper()
	chain, err := n.Chain().Range(1, int(n.Chain().Height()))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, b := range chain {
		count[b.Data]++
	}
	for _, l := range lines {
		if count[l] != 1 {
			return fmt.Sprintf("line %q is on the main chain %d times", l, count[l])
		}
	}
	return ""
}

// countAuthor counts author's blocks on n's main chain.
func countAuthor(t *testing.T, n *Node, author string) int {
	t.Helper()
	chain, err := n.Chain().Range(1, int(n.Chain().Height()))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, b := range chain {
		if b.Author == author {
			count++
		}
	}
	return count
}

// A node's own lines obey its budget by waiting, on a virtual clock: none
// is refused.
func TestOwnLinesWaitForBudget(t *testing.T) {
	b := newAuthorBudget(10, 5, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 5 {
		if err := b.wait(ctx, "me"); err != nil {
			t.Fatal(err)
		}
	}
	if b.Allow("me") {
		t.Fatal("the burst did not run out")
	}
	cancel()
	if err := b.wait(ctx, "me"); err == nil {
		t.Fatal("a wait past the budget returned at once with a cancelled context")
	}
}

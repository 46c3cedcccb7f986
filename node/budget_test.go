package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/node/internal/ratelimit"
)

// A valid-block flood: an attacker connected to a publishes thousands of
// validly signed blocks that extend the chain, with its own key, as fast as
// it can, while a and c type. Every honest line lands once on every node;
// of the attacker's blocks, no node stores more than its budget allows, so
// the third node (c, two hops away) gets no more than that either. The
// burst is small: of the 3,000 published, the attacker's own GossipSub
// queue lets as few as 90 reach a, and some must be refused.
func TestAuthorBudget(t *testing.T) {
	const rate, burst, flood = 50, 20, 3000
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
	if _, ok := b.Allow(&ledger.Block{Author: "me"}, ""); ok {
		t.Fatal("the burst did not run out")
	}
	cancel()
	if err := b.wait(ctx, "me"); err == nil {
		t.Fatal("a wait past the budget returned at once with a cancelled context")
	}
}

// The budgets on a clock that moves only when told: what a run of new
// blocks gets through, by author and by the peer that brings them.
func TestBudget(t *testing.T) {
	// An author's budget: 10 a second, a burst of 20. A carrier's for
	// every new block: 40, 80; for new authors' blocks: 10, 20; all new
	// authors together: 40, 80.
	const rate, burst = 10, 20
	fresh := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
	}
	same := func(a string) func(int) string { return func(int) string { return a } }
	ownID := peer.ID("P").String()
	type phase struct {
		wait      time.Duration // the clock moves on first
		stored    []string      // blocks by these authors are stored (after wait)
		from      peer.ID       // the peer that brings the blocks
		author    func(i int) string
		n         int
		allowed   int
		wantLimit string // the reason of the last refusal, if any
	}
	cases := []struct {
		name   string
		know   []string
		phases []phase
	}{
		{"one fresh key: its author budget", nil, []phase{
			{from: "P", author: same("k"), n: 100, allowed: burst, wantLimit: limitAuthor},
		}},
		{"a thousand fresh keys through one peer: one author's budget", nil, []phase{
			{from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
		}},
		{"and it refills at one author's rate", nil, []phase{
			{from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
			{wait: time.Second, from: "P", author: fresh("j"), n: 1000, allowed: rate, wantLimit: limitNewAuthor},
		}},
		{"fresh keys through five peers: new authors' shared budget", nil, []phase{
			{from: "P1", author: fresh("a"), n: 1000, allowed: burst},
			{from: "P2", author: fresh("b"), n: 1000, allowed: burst},
			{from: "P3", author: fresh("c"), n: 1000, allowed: burst},
			{from: "P4", author: fresh("d"), n: 1000, allowed: burst},
			{from: "P5", author: fresh("e"), n: 1000, allowed: 0, wantLimit: limitNewAuthor},
		}},
		{"a peer's own lines are not a new author's", nil, []phase{
			{from: "P", author: same(ownID), n: 100, allowed: burst, wantLimit: limitAuthor},
			{from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
		}},
		{"known authors: past the new authors' share, up to the carrier's", nil, []phase{
			{stored: []string{"k-0", "k-1", "k-2", "k-3", "k-4", "k-5", "k-6", "k-7", "k-8", "k-9"}},
			{wait: knownAfter, from: "P", author: func(i int) string { return fmt.Sprintf("k-%d", i%10) }, n: 1000, allowed: peerShare * burst, wantLimit: limitPeer},
		}},
		{"a known author passes a carrier whose new authors' share is spent", nil, []phase{
			{stored: []string{"honest"}},
			{wait: knownAfter, from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
			{from: "P", author: same("honest"), n: 100, allowed: burst, wantLimit: limitAuthor},
		}},
		{"not known before knownAfter", nil, []phase{
			{stored: []string{"honest"}},
			{wait: knownAfter - time.Second, from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
			{from: "P", author: same("honest"), n: 100, allowed: 0, wantLimit: limitNewAuthor},
		}},
		{"this node and listed authors are known", []string{"listed"}, []phase{
			{from: "P", author: same("listed"), n: 100, allowed: burst, wantLimit: limitAuthor},
			{from: "P", author: fresh("k"), n: 1000, allowed: burst, wantLimit: limitNewAuthor},
		}},
		{"a refused block takes no token", nil, []phase{
			{from: "P", author: fresh("k"), n: burst, allowed: burst},
			{from: "P", author: same("x"), n: 30, allowed: 0, wantLimit: limitNewAuthor},
			{from: "Q", author: same("x"), n: 30, allowed: burst, wantLimit: limitAuthor},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
			b := newAuthorBudget(rate, burst, clock.Now)
			b.know(tc.know...)
			for i, ph := range tc.phases {
				clock.Add(ph.wait)
				for _, a := range ph.stored {
					b.stored(a)
				}
				allowed, limit := 0, ""
				for j := range ph.n {
					l, ok := b.Allow(&ledger.Block{Author: ph.author(j)}, ph.from)
					if ok {
						allowed++
					} else {
						limit = l
					}
				}
				if allowed != ph.allowed || (ph.wantLimit != "" && limit != ph.wantLimit) {
					t.Fatalf("phase %d: %d of %d allowed, last refused as %q; want %d, %q", i, allowed, ph.n, limit, ph.allowed, ph.wantLimit)
				}
			}
		})
	}
}

// The authors a node remembers are bounded: a flood of fresh keys pushes
// out other new authors, never known ones; and if keys aged on purpose
// fill the table, those idle longest go first.
func TestBudgetAuthorsBounded(t *testing.T) {
	t.Run("fresh keys", func(t *testing.T) {
		clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
		b := newAuthorBudget(10, 20, clock.Now)
		b.stored("honest")
		clock.Add(knownAfter)
		for i := range 3 * maxAuthors {
			b.stored(fmt.Sprintf("fresh-%d", i))
			if len(b.seen) > maxAuthors {
				t.Fatalf("%d authors remembered, bound %d", len(b.seen), maxAuthors)
			}
		}
		if known, _ := b.authorCounts(); known != 1 || !b.knownLocked("honest", "") {
			t.Fatalf("after a flood of fresh keys: %d known, honest known: %v", known, b.knownLocked("honest", ""))
		}
	})
	t.Run("aged keys", func(t *testing.T) {
		clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
		b := newAuthorBudget(10, 20, clock.Now)
		b.stored("honest")
		for i := range maxAuthors - 1 {
			clock.Add(time.Millisecond)
			b.stored(fmt.Sprintf("aged-%d", i))
		}
		clock.Add(knownAfter)
		if known, fresh := b.authorCounts(); known != maxAuthors || fresh != 0 {
			t.Fatalf("%d known, %d new; want %d known", known, fresh, maxAuthors)
		}
		b.stored("honest") // active again
		b.stored("one more")
		if len(b.seen) != maxAuthors*3/4+1 || !b.knownLocked("honest", "") || b.knownLocked("aged-0", "") || !b.knownLocked(fmt.Sprintf("aged-%d", maxAuthors-2), "") {
			t.Fatalf("%d authors remembered; honest known: %v; the idlest aged key known: %v; the latest: %v", len(b.seen),
				b.knownLocked("honest", ""), b.knownLocked("aged-0", ""), b.knownLocked(fmt.Sprintf("aged-%d", maxAuthors-2), ""))
		}
	})
}

// A many-key flood cannot enter by sync either: a holds 1,000 young blocks
// signed by 1,000 keys (it took them without a budget); b, with one, syncs
// from a no more of them than one author's budget allows, and comes back
// for more as it refills.
func TestManyKeySyncBudget(t *testing.T) {
	const rate, burst, keys = 20, 200, 1000
	a := startNodeWith(t, Config{AuthorRate: -1})
	var run []*ledger.Block
	parent := a.Chain().Head()
	for i := range keys {
		seed := make([]byte, ed25519.SeedSize)
		copy(seed, fmt.Sprintf("sybil %d", i))
		blk, err := ledger.NewSigner(ed25519.NewKeyFromSeed(seed)).Sign(parent, fmt.Sprintf("sybil %d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		run, parent = append(run, blk), blk
	}
	if _, err := a.Chain().Add(run...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := startNodeWith(t, Config{AuthorRate: rate, AuthorBurst: burst}, a)
	waitFor(t, 20*time.Second, "b to sync past its first cut", func() bool { return b.Chain().Height() > burst })
	height := int(b.Chain().Height())
	allowed := burst + int(float64(rate)*time.Since(start).Seconds()) + rate
	t.Logf("b synced %d of a's %d blocks by %d keys in %v (one author's budget: %d); drops %v", height, keys, keys, time.Since(start).Round(time.Millisecond), allowed, b.Drops())
	if height > allowed {
		t.Errorf("b synced %d of the blocks; one author's budget allows %d", height, allowed)
	}
	if b.Drops()["sync_new_author_rate_limited"] == 0 {
		t.Errorf("no sync cut counted: drops %v", b.Drops())
	}
}

// A peer whose blocks are refused faster than throttleShare authors'
// budgets is throttled: what it sends beyond its tokens is dropped unread,
// and stays dropped while it goes on; one refused less often never is.
func TestBudgetThrottle(t *testing.T) {
	const rate, burst = 10, 20
	const tolerance, refill = throttleShare * burst, throttleShare * rate // 80 at once, 40 a second
	clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
	b := newAuthorBudget(rate, burst, clock.Now)
	steps := []struct {
		name      string
		wait      time.Duration
		refused   int // blocks from p refused, then
		sent      int // blocks in one RPC from p
		wantKept  int
		wantNoted bool
	}{
		{name: "within the tolerance", refused: tolerance - 10, sent: 20, wantKept: 10, wantNoted: true},
		{name: "throttled", sent: 100, wantKept: 0},
		{name: "sending on: the tokens back are taken", wait: time.Second, sent: refill + 10, wantKept: 0},
		{name: "still owing", wait: time.Second, sent: 1, wantKept: 0},
		{name: "quiet long enough", wait: 3 * time.Second, sent: 5, wantKept: 5},
	}
	for _, s := range steps {
		clock.Add(s.wait)
		for range s.refused {
			b.refuse("P")
		}
		if kept := b.admit("P", s.sent); kept != s.wantKept {
			t.Fatalf("%s: %d of %d blocks kept, want %d", s.name, kept, s.sent, s.wantKept)
		}
		if s.wantNoted && !b.noteThrottled("P") {
			t.Fatalf("%s: throttling not news", s.name)
		}
	}
	if b.noteThrottled("P") {
		t.Fatal("throttling noted twice within throttleNote")
	}
	for range 60 {
		clock.Add(time.Second)
		for range refill / 2 {
			b.refuse("Q")
			if b.admit("Q", 1) != 1 {
				t.Fatal("a peer refused at half the tolerance's rate was throttled")
			}
		}
	}
}

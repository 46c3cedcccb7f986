package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/node/internal/ratelimit"
)

// The author budget. On an open network every key may author blocks; one
// author adding thousands a second would fill every node's disk and queue
// honest lines behind its own. So each node stores and relays at most
// AuthorRate new blocks per second per author (with a burst of
// AuthorBurst): beyond that a gossiped block is IGNOREd (not stored, not
// relayed, counted as author_rate_limited), and a sync stops at the first
// young block over budget and comes back later. The sender is not
// penalised for the excess, since an honest peer relays what it accepted and
// its timing differs a little from this node's; a peer that keeps sending
// over-budget blocks past a tolerance (excessBurst at once, excessRate a
// second after) is given budgetPenalty as its application score for
// penaltyFor (graylisted: its gossip is dropped unread).
//
// The node's own lines obey its budget too (it would be pointless to make
// blocks peers refuse), by waiting: a piped file goes in at the budget's
// rate, nothing is lost. Lines re-appended after a reorg do not wait.
const (
	DefaultAuthorRate = 200
	// authorBurstFactor: the default burst is this many seconds of rate.
	authorBurstFactor = 10
	// youngFor is how recent a block fetched by sync must be (by its
	// timestamp) to count against its author's budget: a late joiner
	// fetching history is not slowed, a flood cannot enter by sync instead
	// of gossip.
	youngFor = time.Minute

	excessRate    = 100
	excessBurst   = 1000
	budgetPenalty = -500.0
	penaltyFor    = time.Minute
	// maxPenalised bounds the peers remembered as penalised.
	maxPenalised = 4096
)

// authorBudget holds the per-author buckets and the per-peer tolerance. The
// gossip validator and the syncer (chainsync.Budget) both take from it.
type authorBudget struct {
	authors *ratelimit.Limiter // nil: no budget
	excess  *ratelimit.Limiter
	now     func() time.Time

	mu        sync.Mutex // guards penalised
	penalised map[peer.ID]time.Time
}

func newAuthorBudget(rate, burst int, now func() time.Time) *authorBudget {
	if now == nil {
		now = time.Now
	}
	b := &authorBudget{excess: ratelimit.New(excessRate, excessBurst, now), now: now, penalised: map[peer.ID]time.Time{}}
	if rate > 0 {
		b.authors = ratelimit.New(rate, burst, now)
	}
	return b
}

// Allow takes one block of author's budget, reporting false if none is left.
func (b *authorBudget) Allow(author string) bool {
	return b.authors == nil || b.authors.Allow(author)
}

// wait takes one block of author's budget, waiting for it (own lines).
func (b *authorBudget) wait(ctx context.Context, author string) error {
	if b.authors == nil {
		return nil
	}
	return b.authors.Wait(ctx, author)
}

// Young reports whether a block fetched by sync counts against its
// author's budget.
func (b *authorBudget) Young(blk *ledger.Block) bool {
	return b.now().Sub(blk.Time()) < youngFor
}

// over notes that p sent a block over its author's budget; past the
// tolerance, p is penalised.
func (b *authorBudget) over(p peer.ID) {
	if b.excess.Allow(string(p)) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.penalised) >= maxPenalised {
		now := b.now()
		for k, until := range b.penalised {
			if now.After(until) {
				delete(b.penalised, k)
			}
		}
	}
	b.penalised[p] = b.now().Add(penaltyFor)
}

// penalty is p's application score for sustained excess (0 if none).
func (b *authorBudget) penalty(p peer.ID) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until, ok := b.penalised[p]; ok && b.now().Before(until) {
		return budgetPenalty
	}
	return 0
}

package node

import (
	"context"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/node/internal/ratelimit"
)

// The budget. On an open network every key may author blocks; one author
// adding thousands a second would fill every node's disk and queue honest
// lines behind its own. And keys are free: a budget per author alone is
// no bound for whoever signs with a thousand. So each new block (valid,
// not held here yet) that gossip or a sync brings takes a token from each
// of these token buckets, all or none:
//
//   - its author's: AuthorRate a second, a burst of AuthorBurst;
//   - its carrier's, the peer whose message first brought it (gossip
//     validates a message once, from the first peer that sent it; a sync
//     is from one peer): peerShare times an author's budget, whoever the
//     authors;
//   - if its author is new to this node: its carrier's share for new
//     authors, one author's budget, and the share of all new authors
//     together, newAuthorsShare times an author's budget.
//
// An author is known (not new) if it is this node, on the --authors list,
// the carrier itself (a peer's own lines), or if this node first stored a
// block by it at least knownAfter ago. So a peer that signs with a
// thousand fresh keys brings no more than one author could: a node stores
// and relays at most one author's budget of them, and its neighbours,
// which see that node as the carrier, no more either. Known authors' lines
// are not held back by what a carrier relays for new ones.
//
// Over any budget a gossiped block is IGNOREd (not stored, not relayed,
// counted under the budget's reason: author_rate_limited,
// peer_rate_limited, new_author_rate_limited), and a sync stops at the
// first young block over one and comes back later. The sender is not
// penalised (its score is untouched): an honest relay of a flood is the
// first to bring it here, and it relays what it accepted a little out of
// step with this node's buckets. But each refused block still cost a
// signature check, and GossipSub remembers every message for two minutes:
// a peer whose blocks are refused faster than throttleShare authors'
// budgets is throttled. Each refusal takes a token from its bucket; the
// blocks it sends beyond the tokens left are dropped unread
// (peer_throttled) and take a token too, owed if need be (up to a burst),
// so it stays throttled for as long as it sends faster than that; and
// discovery does not name it for a while. An honest relay sends only what
// its own budgets let it store: of new authors' blocks, newAuthorsShare
// authors' budgets, of which this node takes one, so it is refused less.
//
// The node's own lines obey its author budget too (it would be pointless
// to make blocks peers refuse), by waiting: a piped file goes in at the
// budget's rate, nothing is lost. Lines re-appended after a reorg do not
// wait.
const (
	DefaultAuthorRate = 200
	// authorBurstFactor: the default burst is this many seconds of rate.
	authorBurstFactor = 10
	// youngFor is how recent a block fetched by sync must be (by its
	// timestamp) to count against the budget: a late joiner fetching
	// history is not slowed, a flood cannot enter by sync instead of
	// gossip.
	youngFor = time.Minute

	// peerShare is a carrier's budget for all the new blocks it brings, in
	// authors' budgets: room for a few busy honest authors behind one
	// peer, and a bound on one that signs with keys aged to known.
	peerShare = 4
	// newAuthorsShare is the budget of all new authors' blocks together,
	// in authors' budgets: however many peers bring fresh keys' blocks,
	// a node stores no more of them than this many authors could add.
	newAuthorsShare = 4
	// knownAfter is how long after this node first stored a block by an
	// author that author is known: what an attacker must wait with each
	// key before it escapes the new authors' shares.
	knownAfter = 10 * time.Minute
	// maxAuthors bounds the authors remembered (knownAfter).
	maxAuthors = 4096
	// throttleShare is the rate and burst, in authors' budgets, of the
	// refused blocks a peer may send before it is throttled: each one read
	// costs a signature check and two minutes in GossipSub's memory of
	// messages, and an honest relay is refused less (above).
	throttleShare = newAuthorsShare
	// throttleNote is how often a peer throttled all along is logged and
	// reported to discovery; maxThrottled bounds the peers remembered.
	throttleNote = time.Minute
	maxThrottled = 4096
)

// The drop reasons of the budgets, in gossip; a sync counts them prefixed
// "sync_".
const (
	limitAuthor    = "author_rate_limited"
	limitPeer      = "peer_rate_limited"
	limitNewAuthor = "new_author_rate_limited"
)

// authorBudget holds the buckets, the authors this node has seen and the
// peers it throttles. The gossip validator and the syncer
// (chainsync.Budget) both take from it.
type authorBudget struct {
	now      func() time.Time
	authors  *ratelimit.Limiter // per author; nil: no budget at all
	carriers *ratelimit.Limiter // per carrier, every new block
	newBy    *ratelimit.Limiter // per carrier, blocks by new authors
	newAll   *ratelimit.Limiter // blocks by new authors, one key ("")
	refused  *ratelimit.Limiter // per peer, blocks refused: throttled when empty

	mu        sync.Mutex // guards the fields below; Allow takes all or none under it
	always    map[string]bool
	seen      map[string]*authorSeen // at most maxAuthors
	throttled map[peer.ID]time.Time  // when each throttled peer was last noted
}

// authorSeen is when this node first and last stored a block by an author.
type authorSeen struct{ first, last time.Time }

func newAuthorBudget(rate, burst int, now func() time.Time) *authorBudget {
	if now == nil {
		now = time.Now
	}
	b := &authorBudget{now: now, always: map[string]bool{}, seen: map[string]*authorSeen{}, throttled: map[peer.ID]time.Time{}}
	if rate > 0 {
		b.authors = ratelimit.New(rate, burst, now)
		b.carriers = ratelimit.New(peerShare*rate, peerShare*burst, now)
		b.newBy = ratelimit.New(rate, burst, now)
		b.newAll = ratelimit.New(newAuthorsShare*rate, newAuthorsShare*burst, now)
		b.refused = ratelimit.New(throttleShare*rate, throttleShare*burst, now)
	}
	return b
}

// know makes authors known from the start: this node, the --authors list.
func (b *authorBudget) know(authors ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range authors {
		b.always[a] = true
	}
}

// Allow takes one new block's tokens from every budget it counts against,
// from being the peer that brought it. If any has none left it takes none
// and reports the budget's drop reason.
func (b *authorBudget) Allow(blk *ledger.Block, from peer.ID) (limit string, ok bool) {
	if b.authors == nil {
		return "", true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	carrier := string(from)
	fresh := !b.knownLocked(blk.Author, from)
	switch {
	case !b.authors.Has(blk.Author):
		return limitAuthor, false
	case !b.carriers.Has(carrier):
		return limitPeer, false
	case fresh && !(b.newBy.Has(carrier) && b.newAll.Has("")):
		return limitNewAuthor, false
	}
	// The author's bucket first: own lines' waits take from it outside
	// b.mu; the others change only under it, so their tokens are there.
	if !b.authors.Allow(blk.Author) {
		return limitAuthor, false
	}
	b.carriers.Allow(carrier)
	if fresh {
		b.newBy.Allow(carrier)
		b.newAll.Allow("")
	}
	return "", true
}

// knownLocked reports whether author is known to this node, for a block
// that from brought. b.mu is held.
func (b *authorBudget) knownLocked(author string, from peer.ID) bool {
	if b.always[author] {
		return true
	}
	if s, ok := b.seen[author]; ok && b.now().Sub(s.first) >= knownAfter {
		return true
	}
	return from != "" && author == from.String()
}

// stored notes that this node stored a block by author.
func (b *authorBudget) stored(author string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if s, ok := b.seen[author]; ok {
		s.last = now
		return
	}
	if len(b.seen) >= maxAuthors {
		b.forgetLocked(now)
	}
	b.seen[author] = &authorSeen{first: now, last: now}
}

// forgetLocked makes room among the authors remembered: it forgets every
// author not known yet, so a flood of fresh keys pushes out only other
// new authors; if that is not enough (all of them are known, keys aged
// on purpose), it forgets the quarter idle longest. b.mu is held.
func (b *authorBudget) forgetLocked(now time.Time) {
	for a, s := range b.seen {
		if now.Sub(s.first) < knownAfter {
			delete(b.seen, a)
		}
	}
	if len(b.seen) < maxAuthors {
		return
	}
	idle := make([]string, 0, len(b.seen))
	for a := range b.seen {
		idle = append(idle, a)
	}
	slices.SortFunc(idle, func(x, y string) int { return b.seen[x].last.Compare(b.seen[y].last) })
	for _, a := range idle[:maxAuthors/4] {
		delete(b.seen, a)
	}
}

// authorCounts returns how many of the authors this node stored blocks by
// are known and how many new (the metrics).
func (b *authorBudget) authorCounts() (known, fresh int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for a := range b.seen {
		if b.knownLocked(a, "") {
			known++
		} else {
			fresh++
		}
	}
	return known, fresh
}

// inspectRPC drops, before GossipSub reads them, the blocks in an RPC
// beyond what its sender may still have refused, then copies of blocks
// this node has already taken in (copies.go, after the budget: a copy
// costs its sender as much as before); its control messages are kept, so
// the mesh goes on.
func (n *Node) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	defer n.dropCopies(from, rpc)
	count := len(rpc.Publish)
	keep := n.budget.admit(from, count)
	if keep == count {
		return nil
	}
	rpc.Publish = rpc.Publish[:keep]
	for range count - keep {
		n.drop("peer_throttled")
	}
	if n.budget.noteThrottled(from) {
		n.log.Info("throttling a peer: it sends blocks faster than this node's budgets let it store them", "peer", from)
		n.sync.RejectedFrom(from)
	}
	return nil
}

// budgetChange notes the authors of the blocks a change stored.
func (n *Node) budgetChange(c change) {
	for _, blk := range c.res.Added {
		n.budget.stored(blk.Author)
	}
}

// wait takes one block of author's budget, waiting for it (own lines).
func (b *authorBudget) wait(ctx context.Context, author string) error {
	if b.authors == nil {
		return nil
	}
	return b.authors.Wait(ctx, author)
}

// Young reports whether a block fetched by sync counts against the budget.
func (b *authorBudget) Young(blk *ledger.Block) bool {
	return b.now().Sub(blk.Time()) < youngFor
}

// refuse notes that p sent a block this node refused over a budget.
func (b *authorBudget) refuse(p peer.ID) {
	if b.refused != nil {
		b.refused.Charge(string(p), 1)
	}
}

// admit returns how many of the count blocks in an RPC from p are to be
// read: as many as p has tokens left for refusals. The rest are dropped
// unread, and take tokens too (owed, if p has none), so a peer that goes
// on sending faster than the tokens come back stays throttled.
func (b *authorBudget) admit(p peer.ID, count int) int {
	if b.refused == nil || count == 0 {
		return count
	}
	keep := min(count, max(0, int(b.refused.Tokens(string(p)))))
	if keep < count {
		b.refused.Charge(string(p), count-keep)
	}
	return keep
}

// noteThrottled reports whether throttling p is news: the first time, or
// throttleNote after it was last news.
func (b *authorBudget) noteThrottled(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if at, ok := b.throttled[p]; ok && now.Sub(at) < throttleNote {
		return false
	}
	if len(b.throttled) >= maxThrottled {
		for k, at := range b.throttled {
			if now.Sub(at) >= throttleNote {
				delete(b.throttled, k)
			}
		}
		if len(b.throttled) >= maxThrottled {
			return false
		}
	}
	b.throttled[p] = now
	return true
}

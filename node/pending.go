package node

import (
	"context"
	"sync"
	"time"
)

// pendingWait bounds a wait for a parent. A block is pending from the
// moment GossipSub names it (msgcache.go), and GossipSub checks messages
// in the order it named them, so a parent still pending when its child is
// checked is normally in the other worker's hands, microseconds from done.
// One named but never checked (dropped by a full queue) holds its children
// this long before they are held as orphans, as without the wait.
const pendingWait = 100 * time.Millisecond

// pendingBlocks names the blocks the gossip validator has been given and
// not finished with. GossipSub validates on several workers at once, so of
// two blocks sent in order on one stream the second may be checked before
// the first is stored; without this it would be held as an orphan
// (ignored, not relayed) and published again once its parent connected
// it: in a burst of 3,000 blocks on 10 nodes that was a quarter of every
// node's blocks, each one sent again to every peer. A block whose parent
// is pending waits for it instead. The set holds the blocks named and not
// yet checked (bounded with them: msgcache.go decodedKeep) and those being
// checked (one per validation worker).
type pendingBlocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newPendingBlocks() *pendingBlocks { return &pendingBlocks{m: map[string]chan struct{}{}} }

// begin names hash as being checked; the returned func, called when the
// check has ended (stored or refused), wakes those waiting for it. A second
// copy of a block being checked names nothing.
func (p *pendingBlocks) begin(hash string) (end func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[hash]; ok {
		return func() {}
	}
	done := make(chan struct{})
	p.m[hash] = done
	return func() {
		p.mu.Lock()
		delete(p.m, hash)
		p.mu.Unlock()
		close(done)
	}
}

// wait returns once the check of hash has ended, at once if none is
// pending, after pendingWait, or when ctx ends. Waits cannot form a cycle:
// a block waits only for its parent, and a block's parent is never its
// descendant.
func (p *pendingBlocks) wait(ctx context.Context, hash string) {
	p.mu.Lock()
	done, ok := p.m[hash]
	p.mu.Unlock()
	if !ok {
		return
	}
	t := time.NewTimer(pendingWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

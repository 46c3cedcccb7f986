package chainsync

import (
	"sync"
	"sync/atomic"
	"time"
)

// debounce runs a function once, a while after it was first asked to,
// however often it is asked meanwhile; after stop, never again.
type debounce struct {
	mu      sync.Mutex // guards the fields below
	pending *time.Timer
	stopped bool
}

// after runs fn after d unless a run is already pending.
func (d *debounce) after(dur time.Duration, fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending != nil || d.stopped {
		return
	}
	d.pending = time.AfterFunc(dur, func() {
		d.mu.Lock()
		d.pending = nil
		stopped := d.stopped
		d.mu.Unlock()
		if !stopped {
			fn()
		}
	})
}

// stop cancels a pending run and refuses later ones.
func (d *debounce) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.pending != nil {
		d.pending.Stop()
		d.pending = nil
	}
}

// gossipHold decides when a sync that is due is put off because gossip is
// moving the head: for gossipGrace after gossip last moved it, and never
// for more than maxGossipDefer in a row, so a peer keeping the head moving
// by gossip cannot keep this node from a better branch for long.
type gossipHold struct {
	last     atomic.Int64 // when gossip last moved the head (Unix ns); any goroutine
	deferred time.Time    // when the current run of put-off syncs began; the sync loop only
}

// moved notes that gossip just moved the head.
func (g *gossipHold) moved() { g.last.Store(time.Now().UnixNano()) }

// wait returns how long a sync due now should be put off; 0 means sync now.
func (g *gossipHold) wait() time.Duration {
	left := max(0, gossipGrace-time.Since(time.Unix(0, g.last.Load())))
	if left == 0 {
		g.deferred = time.Time{}
		return 0
	}
	if g.deferred.IsZero() {
		g.deferred = time.Now()
	}
	if time.Since(g.deferred) >= maxGossipDefer {
		g.deferred = time.Time{}
		return 0
	}
	return left
}

// reset ends a run of put-off syncs (nothing is due any more).
func (g *gossipHold) reset() { g.deferred = time.Time{} }

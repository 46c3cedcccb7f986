package chainsync

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The head re-check: asked many times within recheckAfter, it runs once,
// recheckAfter after the first ask; after stop, never.
func TestDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d debounce
		var runs atomic.Int32
		start := time.Now()
		var ranAt time.Duration
		for range 10 {
			d.after(recheckAfter, func() { ranAt = time.Since(start); runs.Add(1) })
			time.Sleep(recheckAfter / 20)
		}
		time.Sleep(recheckAfter)
		synctest.Wait()
		if runs.Load() != 1 || ranAt != recheckAfter {
			t.Fatalf("%d runs, at %v; want 1 at %v", runs.Load(), ranAt, recheckAfter)
		}
		d.after(recheckAfter, func() { runs.Add(1) })
		d.stop()
		d.after(recheckAfter, func() { runs.Add(1) })
		time.Sleep(2 * recheckAfter)
		synctest.Wait()
		if runs.Load() != 1 {
			t.Fatalf("%d runs after stop", runs.Load()-1)
		}
	})
}

// A sync is put off while gossip moves the head, by what is left of
// gossipGrace, and never for maxGossipDefer or more in a row.
func TestGossipHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gossipHold
		if w := g.wait(); w != 0 {
			t.Fatalf("no gossip yet: put off %v", w)
		}
		g.moved()
		time.Sleep(gossipGrace / 5)
		if w := g.wait(); w != gossipGrace*4/5 {
			t.Fatalf("put off %v, want the rest of the grace %v", w, gossipGrace*4/5)
		}
		time.Sleep(gossipGrace)
		if w := g.wait(); w != 0 {
			t.Fatalf("gossip stalled for a grace: still put off %v", w)
		}
		// Gossip that never stops: syncs are put off until the cap.
		start := time.Now()
		for {
			g.moved()
			if g.wait() == 0 {
				break
			}
			time.Sleep(gossipGrace / 5)
		}
		if held := time.Since(start); held != maxGossipDefer {
			t.Fatalf("held for %v with gossip never stopping, want %v", held, maxGossipDefer)
		}
		// The cap starts again with the next run.
		if w := g.wait(); w == 0 {
			t.Fatal("a new run of put-off syncs was not held")
		}
	})
}

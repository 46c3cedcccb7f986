package node

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A child checked while its parent is pending waits until the parent's
// check ends; a parent named but never checked holds it pendingWait at
// most; nothing pending is no wait at all; entries go with their end.
func TestPendingParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPendingBlocks()
		ctx := context.Background()

		start := time.Now()
		p.wait(ctx, "nothing")
		if d := time.Since(start); d != 0 {
			t.Fatalf("waited %v for a block nobody is checking", d)
		}

		end := p.begin("parent")
		if again := p.begin("parent"); again == nil {
			t.Fatal("a second copy's begin returned nil")
		} else {
			again() // ends nothing: the first copy owns the entry
		}
		waited := make(chan time.Duration)
		go func() {
			start := time.Now()
			p.wait(ctx, "parent")
			waited <- time.Since(start)
		}()
		time.Sleep(30 * time.Millisecond)
		end()
		if d := <-waited; d != 30*time.Millisecond {
			t.Fatalf("the child waited %v, want the 30ms its parent took", d)
		}

		p.begin("lost") // named, never checked, never ended
		start = time.Now()
		p.wait(ctx, "lost")
		if d := time.Since(start); d != pendingWait {
			t.Fatalf("waited %v for a parent never checked, want %v", d, pendingWait)
		}
		if len(p.m) != 1 {
			t.Fatalf("%d entries pending, want only the lost one", len(p.m))
		}
	})
}

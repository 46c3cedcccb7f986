package ratelimit

import (
	"testing"
	"testing/synctest"
	"time"
)

// The limiter on Go's virtual clock: a burst, then the rate, per key, and a
// bucket that has been idle long enough is as good as new.
func TestRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(10, 5, nil)
		take := func(key string, n int) (ok int) {
			for range n {
				if l.Allow(key) {
					ok++
				}
			}
			return ok
		}
		if !l.Has("a") || !l.Has("a") {
			t.Fatal("a new key has no token")
		}
		if got := take("a", 8); got != 5 {
			t.Fatalf("burst: %d of 8 allowed, want 5 (Has took some)", got)
		}
		if l.Has("a") {
			t.Fatal("Has reports a token after the burst")
		}
		if got := take("b", 5); got != 5 {
			t.Fatalf("another key: %d of 5 allowed", got)
		}
		time.Sleep(300 * time.Millisecond) // 3 tokens at 10/s
		if got := take("a", 5); got != 3 {
			t.Fatalf("after 300 ms: %d allowed, want 3", got)
		}
		time.Sleep(time.Hour) // refilled to the burst, not beyond
		if got := take("a", 10); got != 5 {
			t.Fatalf("after an hour: %d allowed, want the burst of 5", got)
		}
	})
}

// Past maxBuckets keys, refilled buckets are forgotten rather than the map
// growing without bound; if none has refilled, only the one idle longest
// is, and a busy key keeps its empty bucket.
func TestRateLimiterBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(10, 5, nil)
		for i := range maxBuckets {
			l.Allow(string(rune(i)))
		}
		time.Sleep(time.Second)
		l.Allow("new")
		if len(l.buckets) != 1 {
			t.Fatalf("%d buckets after pruning, want 1", len(l.buckets))
		}
		time.Sleep(time.Millisecond) // "new" is now the one idle longest
		for range 5 {
			l.Allow("busy")
		}
		for i := range maxBuckets - 2 {
			l.Allow(string(rune(i)))
			l.Allow(string(rune(i))) // not refilled
		}
		time.Sleep(time.Millisecond)
		l.Allow("one more")
		if _, kept := l.buckets["new"]; kept || len(l.buckets) != maxBuckets || l.Allow("busy") {
			t.Fatalf("%d buckets, the idlest kept: %v; or the busy key got a fresh burst", len(l.buckets), kept)
		}
	})
}

// Charge takes tokens a key does not have, owing at most one burst, and
// the debt is paid back at the rate before the key has a token again.
func TestRateLimiterCharge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(10, 5, nil)
		for _, c := range []struct {
			charge int
			wait   time.Duration
			want   float64
		}{
			{charge: 3, want: 2},
			{charge: 10, want: -3}, // at most a burst at once
			{charge: 10, want: -5}, // at most a burst owed
			{charge: 1, want: -5},
			{wait: 500 * time.Millisecond, want: 0},
			{wait: time.Hour, want: 5},
		} {
			time.Sleep(c.wait)
			l.Charge("a", c.charge)
			if got := l.Tokens("a"); got != c.want {
				t.Fatalf("charged %d after %v: %v tokens, want %v", c.charge, c.wait, got, c.want)
			}
		}
		if l.Tokens("b") != 5 {
			t.Fatal("a new key has not the burst")
		}
	})
}

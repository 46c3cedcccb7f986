// Package ratelimit is a token bucket per key (a peer, a client address),
// on golang.org/x/time/rate, with a bounded set of keys and a clock that
// tests can set. It imports nothing of gossipchain.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key: each key may make burst requests at
// once and rate per second after that.
type Limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last request
}

// maxBuckets bounds the keys remembered.
const maxBuckets = 4096

// New returns a limiter judging time by now (time.Now if nil).
func New(perSecond, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*bucket{}}
}

// Allow takes a token for key, reporting false if it has none left.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return l.bucket(key, now).AllowN(now, 1)
}

// Has reports whether key has a token left, taking none: a caller that
// must take from several limiters, all or none, asks each first.
func (l *Limiter) Has(key string) bool { return l.Tokens(key) >= 1 }

// Tokens returns how many tokens key has now, taking none.
func (l *Limiter) Tokens(key string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return float64(l.burst)
	}
	return b.lim.TokensAt(l.now())
}

// Charge takes n tokens from key whether it has them or not, owing what it
// lacks (at most one burst is owed): a key charged faster than its rate
// has no token until it slows down.
func (l *Limiter) Charge(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim := l.bucket(key, now)
	if n = min(n, l.burst, int(lim.TokensAt(now))+l.burst); n > 0 {
		lim.ReserveN(now, n)
	}
}

// bucket returns key's bucket, made if new, and marks it used at now.
// l.mu is held.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	return b.lim
}

// Wait takes a token for key, waiting for one if there is none, unless ctx
// ends first.
func (l *Limiter) Wait(ctx context.Context, key string) error {
	l.mu.Lock()
	now := l.now()
	r := l.bucket(key, now).ReserveN(now, 1)
	delay := r.DelayFrom(now)
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		r.CancelAt(l.now()) // the token goes back to the bucket
		l.mu.Unlock()
		return ctx.Err()
	}
}

// prune forgets the buckets that have refilled (their keys are as good as
// new); if none has, the one idle longest: a key forgotten early gets a
// fresh burst, which is the least harm an overflow can do.
func (l *Limiter) prune(now time.Time) {
	var oldest string
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		} else if oldest == "" || b.last.Before(l.buckets[oldest].last) {
			oldest = k
		}
	}
	if len(l.buckets) >= maxBuckets {
		delete(l.buckets, oldest)
	}
}

// ManualClock is a clock that moves only when told to: give its Now to New
// (or to what passes it on) and a test decides how much time passes, so a
// slow machine cannot refill a bucket.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock standing at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on by d.
func (c *ManualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

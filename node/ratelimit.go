package node

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per key (a peer, a client address): each
// key may make burst requests at once and rate per second after that.
type rateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the keys remembered; idle ones are forgotten first.
const maxBuckets = 4096

// newRateLimiter returns a limiter judging time by now (time.Now if nil).
func newRateLimiter(rate, burst int, now func() time.Time) *rateLimiter {
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{rate: float64(rate), burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key, reporting false if it has none left.
func (l *rateLimiter) allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets buckets that have refilled (their keys are as good as new);
// if none has, it forgets all of them rather than grow without bound.
func (l *rateLimiter) prune(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}

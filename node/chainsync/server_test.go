package chainsync

import (
	"context"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/node/internal/ratelimit"
	"gossipchain/protocol"
)

// A peer asking for status far faster than anyone catching up would: past
// the burst, its requests are reset and counted, on both sides.
func TestSyncRequestRateLimit(t *testing.T) {
	// A clock that stands still: a slow machine cannot refill the bucket.
	clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
	n := newSyncRig(t, func(d *Deps) { d.Now = clock.Now })
	other := newSyncRig(t)
	other.connect(t, n.host)
	failed := 0
	for range protocol.SyncRequestBurst + 50 {
		var st protocol.Status
		err := other.s.call(n.host.ID(), &protocol.Request{Type: protocol.RequestStatus, Status: &protocol.Status{Genesis: ledger.Genesis().Hash, Head: ledger.Genesis().Hash}}, func(r *frameReader) error {
			return r.json(protocol.MaxSyncHeaderBytes, &st)
		})
		if err != nil {
			failed++
		}
	}
	// other's own requests (the status exchange on connecting, a
	// discovery round) take tokens from the same bucket.
	if failed < 50 || failed > 60 || n.dropped("rate_limited") != failed {
		t.Fatalf("%d requests failed, %d counted; want the 50 past the burst and the few other made itself", failed, n.dropped("rate_limited"))
	}
	other.mu.Lock()
	counted := other.made[protocol.RequestStatus+" error"]
	other.mu.Unlock()
	if counted < failed {
		t.Errorf("%d failed status requests counted as made; want at least %d", counted, failed)
	}
}

// Trace requests are answered with the node's trace, and go through the
// sync protocol's limits: a malformed one is refused and counted, and a
// peer asking too fast is cut off.
func TestTraceRequests(t *testing.T) {
	fixed := time.Now()
	known := strings.Repeat("ab", 32)
	srv := newSyncRig(t, func(d *Deps) {
		d.Now = func() time.Time { return fixed }
		d.Trace = func(hash string) (*protocol.Trace, bool) {
			if hash != known {
				return nil, false
			}
			return &protocol.Trace{Hash: hash, Index: 7, Via: "gossip"}, true
		}
	})
	cl := newSyncRig(t)
	cl.connect(t, srv.host)
	if a, err := cl.s.AskTrace(context.Background(), srv.host.ID(), known); err != nil || !a.Known || a.Trace.Index != 7 || a.Trace.Via != "gossip" {
		t.Fatalf("trace of a known block: %+v, %v", a, err)
	}
	if a, err := cl.s.AskTrace(context.Background(), srv.host.ID(), strings.Repeat("cd", 32)); err != nil || a.Known {
		t.Fatalf("trace of an unknown block: %+v, %v", a, err)
	}
	// Garbage: a hash that is not one.
	err := cl.s.call(srv.host.ID(), &protocol.Request{Type: protocol.RequestTrace, Hash: "not a hash"}, func(r *frameReader) error {
		var a protocol.TraceAnswer
		return r.json(protocol.MaxTraceAnswerBytes, &a)
	})
	if err == nil {
		t.Fatal("a trace request without a hash was answered")
	}
	waitFor(t, 5*time.Second, "the bad request counted", func() bool { return srv.dropped("sync_bad_request") > 0 })
	// Too fast: the clock stands still, so the burst is all there is.
	refused := 0
	for range protocol.SyncRequestBurst + 20 {
		if _, err := cl.s.AskTrace(context.Background(), srv.host.ID(), strings.Repeat("cd", 32)); err != nil {
			refused++
		}
	}
	if refused < 20 || srv.dropped("rate_limited") < 20 {
		t.Fatalf("%d trace requests refused, %d counted; want at least 20", refused, srv.dropped("rate_limited"))
	}
}

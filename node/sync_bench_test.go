package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkSync measures a late joiner fetching 10,000 blocks from one peer
// over loopback: a fresh node per iteration, timed from start until its
// head matches the source's. Run it with
//
//	go test -run '^$' -bench Sync -benchtime 5x ./node
//
// (scripts/bench.sh runs the same measurement as its sync scenario).
func BenchmarkSync(b *testing.B) {
	const blocks = 10000
	src := syncSource(b, blocks)
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		total += syncOnce(b, src)
	}
	b.ReportMetric(float64(blocks*b.N)/total.Seconds(), "blocks/s")
}

// syncSource is a node holding blocks blocks.
func syncSource(tb testing.TB, blocks int) *Node {
	src, err := New(Config{DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	fill(tb, src, blocks)
	return src
}

// syncOnce starts a fresh node with src as its peer and returns how long it
// took from start until its head matched src's. Closing it is not timed.
func syncOnce(tb testing.TB, src *Node) time.Duration {
	head := src.Chain().Head()
	start := time.Now()
	n, err := New(Config{DataDir: tb.TempDir(), Peers: []peer.AddrInfo{{ID: src.ID(), Addrs: src.host.Addrs()}}})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if b, ok := tb.(*testing.B); ok {
			b.StopTimer()
			defer b.StartTimer()
		}
		n.Close()
	}()
	deadline := time.Now().Add(time.Minute)
	for n.Chain().Head().Hash != head.Hash {
		if time.Now().After(deadline) {
			tb.Fatalf("not synced after a minute: height %d of %d", n.Chain().Height(), head.Index)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

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
func BenchmarkSync(b *testing.B) {
	const blocks = 10000
	src, err := New(Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	fill(b, src, blocks)
	head := src.Chain().Head()
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		start := time.Now()
		n, err := New(Config{DataDir: b.TempDir(), Peers: []peer.AddrInfo{{ID: src.ID(), Addrs: src.host.Addrs()}}})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for n.Chain().Head().Hash != head.Hash {
			if time.Now().After(deadline) {
				b.Fatalf("not synced after a minute: height %d", n.Chain().Height())
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(blocks*b.N)/total.Seconds(), "blocks/s")
}

package chainsync

import (
	"syscall"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/ledger/ledgertest"
)

// BenchmarkStatusExchange measures one head exchange between two connected
// syncers (a stream opened, one request and its answer, both sides): what
// each node's periodic head check costs per peer every headCheckEvery.
// Keep -benchtime within the serving side's burst of requests:
//
//	go test -run '^$' -bench StatusExchange -benchtime 90x ./node/chainsync
func BenchmarkStatusExchange(b *testing.B) {
	a, n := newSyncRig(b), newSyncRig(b)
	if _, err := a.chain.Add(ledgertest.SignRun(b, ledger.Genesis(), 10)...); err != nil {
		b.Fatal(err)
	}
	n.connect(b, a.host)
	// Connected, synced, quiet.
	waitFor(b, time.Minute, "n synced from a", func() bool { return n.chain.Head().Hash == a.chain.Head().Hash })
	time.Sleep(time.Second) // let connection set-up work settle
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		n.s.exchangeStatus(a.host.ID())
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIngest measures what storing a synced run costs as the chain
// grows, signatures aside (the runs are marked checked): Process in runs
// of 1,000, as a late joiner stores what it fetched, and the flusher's
// writes, on a store that already holds GOSSIPCHAIN_INGEST_BASE blocks
// (default 200,000; written straight into the store first), until
// Close has written everything. One op is one block:
//
//	GOSSIPCHAIN_INGEST_BASE=1000000 go test -run '^$' -bench Ingest -benchtime 200000x ./ledger
func BenchmarkIngest(b *testing.B) {
	base := 200_000
	if v, err := strconv.Atoi(os.Getenv("GOSSIPCHAIN_INGEST_BASE")); err == nil && v > 0 {
		base = v
	}
	path := filepath.Join(b.TempDir(), "chain.db")
	writeStore(b, path, base, 2*DefaultFinality, func(i int) bool { return i == base })
	c, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	runs := ingestRuns(c.Head(), b.N)
	cpu0 := cpuTime()
	b.ResetTimer()
	for _, run := range runs {
		if _, err = c.Process(&Checked{blocks: run, valid: len(run)}); err != nil {
			b.Fatal(err)
		}
	}
	// Close writes what waits (index entries too): all of it is counted.
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1000/float64(b.N), "cpu-us/block")
}

// ingestRuns makes n blocks on parent, hashed but not signed, in runs of
// 1,000.
func ingestRuns(parent *Block, n int) [][]*Block {
	s := signer(7)
	var runs [][]*Block
	for lo := 0; lo < n; lo += 1000 {
		run := make([]*Block, min(1000, n-lo))
		for i := range run {
			b := &Block{Index: parent.Index + 1, Timestamp: time.Now().UnixMilli(), Data: fmt.Sprintf("ingested line %d, padded to a typical line", lo+i), PrevHash: parent.Hash, Author: s.ID()}
			b.Hash, _ = b.ComputeHash()
			run[i], parent = b, b
		}
		runs = append(runs, run)
	}
	return runs
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package node

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/internal/harness"
	"gossipchain/ledger"
)

// The chainlen scenario: what a node costs as its chain grows. For each
// length it builds a store (through the ledger, in batches of 1,000), then
// measures, with real node processes on loopback: the time from starting a
// node on that store to its ready file, its idle RSS, a late joiner's
// blocks/s syncing the whole chain from it, the store's bytes per block,
// and GET /blocks near the head.

// progress prints a line that scripts/bench.sh shows while the suite runs.
func progress(format string, args ...any) {
	fmt.Printf("PROGRESS "+format+"\n", args...)
}

// buildChain writes a chain of n blocks into a new data dir: hashed in
// order, signed on every core, added 1,000 at a time.
func buildChain(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := ledger.Open(ChainFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	parent := c.Head()
	// History: timestamps end two minutes ago, so the author budget
	// (for young blocks) does not apply.
	start := time.Now().Add(-2*time.Minute - time.Duration(n)*time.Millisecond)
	last := time.Now()
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		run := make([]*ledger.Block, min(batch, n-lo))
		// Signing needs the parent's hash only: hash in order, sign in
		// parallel.
		for i := range run {
			idx := lo + i
			b := &ledger.Block{Index: parent.Index + 1, Timestamp: start.Add(time.Duration(idx) * time.Millisecond).UnixMilli(),
				Data: fmt.Sprintf("block %d of a long chain, padded to a typical line: %s", idx, strings.Repeat("x", 40)), PrevHash: parent.Hash, Author: s.ID()}
			b.Hash, _ = b.ComputeHash()
			run[i], parent = b, b
		}
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(run); i += workers {
					s.Seal(run[i])
				}
			}()
		}
		wg.Wait()
		res, err := c.Add(run...)
		if err != nil {
			t.Fatal(err)
		}
		if lo+batch >= n || time.Since(last) > 2*time.Second {
			if err := res.Wait(); err != nil {
				t.Fatal(err)
			}
			last = time.Now()
			progress("chainlen: building %d blocks: %d stored", n, lo+len(run))
		}
	}
}

// chainLength runs the chainlen scenario at n blocks.
func chainLength(t *testing.T, bin string, n int) benchResult {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	buildStart := time.Now()
	buildChain(t, src, n)
	progress("chainlen: %d blocks built in %.1f s; restarting a node on them", n, time.Since(buildStart).Seconds())
	fi, err := os.Stat(ChainFile(src))
	if err != nil {
		t.Fatal(err)
	}
	r := benchResult{Scenario: "chainlen", System: "gossipchain", Nodes: 2, Blocks: n, BytesPerBlock: round2(float64(fi.Size()) / float64(n))}

	p := harness.StartTB(t, harness.Config{Bin: bin, Data: src})
	r.RestartMs = round2(float64(p.ReadyAfter().Microseconds()) / 1000)
	time.Sleep(2 * time.Second) // idle: running a while with nothing to do
	r.RSSMiB = rssMiB(t, p.Pid())
	// GET /blocks near the head: the median of 21.
	var times []time.Duration
	url := fmt.Sprintf("%s/blocks?from=%d&limit=100", p.API(), n-100)
	for range 21 {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var bs []ledger.Block
		json.NewDecoder(resp.Body).Decode(&bs)
		resp.Body.Close()
		times = append(times, time.Since(start))
		if len(bs) != 100 {
			t.Fatalf("GET /blocks near the head: %d blocks", len(bs))
		}
	}
	slices.Sort(times)
	r.APIms = round2(float64(times[10].Microseconds()) / 1000)

	// A late joiner: from its start until it holds the whole chain.
	progress("chainlen: a late joiner syncing %d blocks", n)
	start := time.Now()
	j := harness.StartTB(t, harness.Config{Bin: bin, Data: filepath.Join(dir, "joiner"), Peers: []string{p.Addr()}})
	last := time.Now()
	for {
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Height == uint64(n) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("late joiner at %d of %d blocks after 10 minutes", st.Height, n)
		}
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			progress("chainlen: joiner at %d of %d", st.Height, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.BlocksPerS = round2(float64(n) / time.Since(start).Seconds())
	r.DeliveredPct = percent(100)
	j.Stop()
	p.Stop()
	return r
}

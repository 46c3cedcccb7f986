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
// and GET /blocks near the head. It does so for two histories side by
// side: back-dated, and stamped with the time each block is made.

// progress prints a line that scripts/bench.sh shows while the suite runs.
func progress(format string, args ...any) {
	fmt.Printf("PROGRESS "+format+"\n", args...)
}

// History is how a chainlen store's timestamps are made.
type history string

const (
	// backDated: one millisecond apart, ending two minutes before the
	// build, as the scenario made them first.
	backDated history = "old"
	// recent: appended line by line through the ledger, stamped when
	// each is made as a node stamps a line typed or piped in (many
	// blocks share a millisecond): the whole chain is
	// younger than the author budget's window and, near its head, than
	// the finality settle time.
	recent history = "now"
)

// scenario is the result's scenario name for a history.
func (h history) scenario() string {
	if h == recent {
		return "chainlen-now"
	}
	return "chainlen"
}

// buildChain writes a chain of n blocks into a new data dir. Back-dated,
// they are hashed in order, signed on every core and added 1,000 at a
// time; recent, they are appended one by one as a node appends the lines
// typed or piped into it (appendLines).
func buildChain(t *testing.T, dir string, n int, h history) {
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
	if h == recent {
		appendLines(t, c, s, n)
		return
	}
	parent := c.Head()
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

// appendLines appends n lines to c as a node's console or POST /blocks
// does (Chain.Append: stamped by the clock, signed one at a time), at
// full speed: the way a file piped into a node without an author budget
// makes its history.
func appendLines(t *testing.T, c *ledger.Chain, s *ledger.Signer, n int) {
	last := time.Now()
	for i := range n {
		res, err := c.Append(s, fmt.Sprintf("line %d piped into a node, padded to a typical line: %s", i, strings.Repeat("x", 40)))
		if err != nil {
			t.Fatal(err)
		}
		if i == n-1 || time.Since(last) > 2*time.Second {
			if err := res.Wait(); err != nil {
				t.Fatal(err)
			}
			last = time.Now()
			progress("chainlen: appending %d lines: %d stored", n, i+1)
		}
	}
}

// chainStore returns a data dir holding a chain of n blocks stamped by h:
// built in a temporary dir, or, for back-dated history with
// GOSSIPCHAIN_BENCH_CHAINLEN_STORE set, built there once and reused by
// later runs (a million blocks take about 40 s to build). A recent chain
// is built for each run: it must be young when it is synced.
func chainStore(t *testing.T, n int, h history) string {
	src := filepath.Join(t.TempDir(), "src")
	if keep := os.Getenv("GOSSIPCHAIN_BENCH_CHAINLEN_STORE"); keep != "" && h == backDated {
		src = filepath.Join(keep, fmt.Sprintf("%s-%d", h, n))
		if _, err := os.Stat(ChainFile(src)); err == nil {
			progress("chainlen: reusing the %d-block store in %s", n, src)
			return src
		}
		// A store left half built by an interrupted run is no store.
		if err := os.RemoveAll(src); err != nil {
			t.Fatal(err)
		}
	}
	buildStart := time.Now()
	buildChain(t, src, n, h)
	progress("chainlen: %d blocks (%s history) built in %.1f s; restarting a node on them", n, h, time.Since(buildStart).Seconds())
	return src
}

// chainLength runs the chainlen scenario at n blocks of history h. Both
// nodes run without an author budget (--author-rate 0): one author made
// the whole chain, faster than a budget lets anyone, and the budget
// counts a synced block only while it is young, which a recent chain is.
func chainLength(t *testing.T, bin string, n int, h history) benchResult {
	dir := t.TempDir()
	src := chainStore(t, n, h)
	fi, err := os.Stat(ChainFile(src))
	if err != nil {
		t.Fatal(err)
	}
	r := benchResult{Scenario: h.scenario(), System: "gossipchain", Nodes: 2, Blocks: n, BytesPerBlock: round2(float64(fi.Size()) / float64(n))}
	args := []string{"--author-rate", "0"}

	p := harness.StartTB(t, harness.Config{Bin: bin, Args: args, Data: src})
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
	j := harness.StartTB(t, harness.Config{Bin: bin, Args: args, Data: filepath.Join(dir, "joiner"), Peers: []string{p.Addr()}})
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

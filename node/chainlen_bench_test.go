package node

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/ledger"
)

// The chainlen scenario: what a node costs as its chain grows. For each
// length it builds a store (through the ledger, in batches of 1,000), then
// measures, with real node processes on loopback: the time from starting a
// node on that store to its printed address, its idle RSS, a late joiner's
// blocks/s syncing the whole chain from it, the store's bytes per block,
// and GET /blocks near the head.

// progress prints a line that scripts/bench.sh shows while the suite runs.
func progress(format string, args ...any) {
	fmt.Printf("PROGRESS "+format+"\n", args...)
}

// buildBinary builds the gossipchain command into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "gossipchain")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
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

// nodeProc is a gossipchain process of the chainlen scenario.
type nodeProc struct {
	cmd   *exec.Cmd
	api   string
	ready time.Duration // from start to the printed address
}

func startNodeProc(t *testing.T, bin, data string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--port", "0", "--api", "127.0.0.1:0", "--data", data}, args...)...)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); stdin.Close() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		l := lines.Text()
		if a, ok := strings.CutPrefix(l, "api: http://"); ok {
			p.api = a
		}
		if strings.HasPrefix(l, "/ip4/") {
			p.ready = time.Since(start)
			go func() {
				for lines.Scan() {
				}
			}()
			return p
		}
	}
	t.Fatalf("node on %s exited before printing its address", data)
	return nil
}

func (p *nodeProc) status(t *testing.T) Status {
	var st Status
	resp, err := http.Get("http://" + p.api + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

func (p *nodeProc) stop() { p.cmd.Process.Signal(os.Interrupt); p.cmd.Wait() }

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

	p := startNodeProc(t, bin, src)
	r.RestartMs = round2(float64(p.ready.Microseconds()) / 1000)
	time.Sleep(2 * time.Second) // idle: running a while with nothing to do
	r.RSSMiB = rssMiB(t, p.cmd.Process.Pid)
	// GET /blocks near the head: the median of 21.
	var times []time.Duration
	url := fmt.Sprintf("http://%s/blocks?from=%d&limit=100", p.api, n-100)
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
	addr := ""
	resp, err := http.Get("http://" + p.api + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	addr = st.Addrs[0]
	progress("chainlen: a late joiner syncing %d blocks", n)
	start := time.Now()
	j := startNodeProc(t, bin, filepath.Join(dir, "joiner"), "--peer", addr)
	last := time.Now()
	for {
		h := j.status(t).Height
		if h == uint64(n) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("late joiner at %d of %d blocks after 10 minutes", h, n)
		}
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			progress("chainlen: joiner at %d of %d", h, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.BlocksPerS = round2(float64(n) / time.Since(start).Seconds())
	r.DeliveredPct = percent(100)
	j.stop()
	p.stop()
	return r
}

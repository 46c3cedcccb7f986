package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/protocol"
)

// TestManyKeyFlood: an attacker host connected to node a of three node
// processes a - b - c (b peers a, c peers b) publishes valid blocks, each
// extending the one before, signed round-robin by 1,000 fresh keys, as
// fast as it can, for GOSSIPCHAIN_FLOOD_SECONDS (default 8), while lines
// are typed on b and c. Each key stays far within its own author budget,
// so only the bound on a peer's new authors (node/budget.go) holds the
// flood: no node stores more of the attacker's blocks than one author's
// budget allows over the flood, as if a single key had flooded; the honest
// relays of the flood (a to b, b to c) are not throttled; honest lines
// land on every chain during the flood (within landWithin), and all of
// them once at the end; every node's memory stays under a fixed bound.
// The figures are logged (go test -v -run TestManyKeyFlood .).
//
// To measure: GOSSIPCHAIN_FLOOD_KEYS sets the number of keys (1: the
// single-author flood to compare with), GOSSIPCHAIN_FLOOD_RATE the nodes'
// --author-rate (default a tenth of the default: see below),
// GOSSIPCHAIN_FLOOD_PACE how many blocks a second the attacker publishes
// (default: as many as it can).
func TestManyKeyFlood(t *testing.T) {
	seconds := floodSeconds(t, 8)
	keyCount := envInt(t, "GOSSIPCHAIN_FLOOD_KEYS", 1000)
	pace := envInt(t, "GOSSIPCHAIN_FLOOD_PACE", math.MaxInt)
	// Peak memory: the bound the issue set for the default build; the race
	// detector's shadow memory takes several times more.
	rssBound := int64(100 << 20)
	if raceBuild {
		rssBound = 400 << 20
	}
	// The nodes' author budget is a tenth of the default, and the attacker
	// publishes a first thousand blocks signed before the clock starts, so
	// the flood exceeds one author's budget however slowly this machine
	// signs (a race build on a busy machine signed 263 blocks/s).
	rate := envInt(t, "GOSSIPCHAIN_FLOOD_RATE", node.DefaultAuthorRate/10)
	burst := 10 * rate
	budget := []string{"--author-rate", strconv.Itoa(rate)}
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"), budget...)
	b := startProc(t, filepath.Join(dir, "b"), append(budget, a.addr)...)
	c := startProc(t, filepath.Join(dir, "c"), append(budget, b.addr)...)
	procs := []*proc{a, b, c}
	topic := attackerTopic(t, a.addr)
	waitMeshed(t, procs...)

	keys := sybilSigners(keyCount)
	authors := map[string]bool{}
	for _, k := range keys {
		authors[k.ID()] = true
	}
	// The attacker's chain, from genesis, its first thousand blocks signed
	// ahead.
	parent := ledger.Genesis()
	signed := 0
	sign := func() []byte {
		blk, err := keys[signed%len(keys)].Sign(parent, fmt.Sprintf("sybil %d", signed), time.Now())
		if err != nil {
			t.Error(err)
			return nil
		}
		data, _ := protocol.EncodeBlock(blk)
		parent, signed = blk, signed+1
		return data
	}
	ahead := make([][]byte, 0, 1000)
	for range cap(ahead) {
		ahead = append(ahead, sign())
	}

	landed := watchLines(t, procs)
	start := time.Now()
	end := start.Add(time.Duration(seconds) * time.Second)
	type floodResult struct {
		n    int
		took time.Duration
	}
	sent := make(chan floodResult, 1)
	go func() {
		n := 0
		publish := func(data []byte) bool {
			if pace < math.MaxInt {
				time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(pace))))
			}
			if data == nil || topic.Publish(context.Background(), data) != nil {
				return false
			}
			n++
			return true
		}
		for _, data := range ahead {
			if !publish(data) {
				break
			}
		}
		for time.Now().Before(end) && publish(sign()) {
		}
		sent <- floodResult{n, time.Since(start)}
	}()
	typed := map[string]time.Time{}
	lines := typeHonest(t, []*proc{b, c}, end, func(line string) { typed[line] = time.Now() })
	fr := <-sent
	floodEnd := start.Add(fr.took)
	var why string
	waitFor(t, 120*time.Second, "one head with every honest line once", func() bool {
		why = honestConverged(t, lines, procs)
		return why == ""
	}, func() string { return why })
	seen := landed()

	// A single author's flood over the same time: its burst, its rate for
	// the flood's duration, and a second of slack.
	allowed := burst + int(float64(rate)*fr.took.Seconds()) + rate
	for i, p := range procs {
		stored := 0
		for _, blk := range p.chain(t) {
			if authors[blk.Author] {
				stored++
			}
		}
		peak := peakRSS(t, p.n.Pid())
		t.Logf("node %c: %d of the attacker's %d published blocks stored (one author's budget over %v: %d); peak RSS %.1f MiB; drops %v",
			'a'+i, stored, fr.n, fr.took.Round(time.Millisecond), allowed, float64(peak)/(1<<20), p.status(t).Drops)
		if stored > allowed {
			t.Errorf("node %c stored %d of the attacker's blocks; one author's budget allows %d", 'a'+i, stored, allowed)
		}
		if peak > rssBound {
			t.Errorf("node %c peaked at %d MiB of memory, bound %d", 'a'+i, peak>>20, rssBound>>20)
		}
	}
	// Honest lines land while the flood goes on: each typed landWithin or
	// more before it ended was on every chain by then.
	var late []string
	var lat []time.Duration
	for _, l := range lines {
		at, ok := seen[l]
		if ok {
			lat = append(lat, at.Sub(typed[l]))
		}
		if typed[l].Before(floodEnd.Add(-landWithin)) && (!ok || at.After(floodEnd)) {
			late = append(late, l)
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("honest lines: %d typed, on every chain after median %v, max %v (polled every %v)",
			len(lines), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), landPoll)
	}
	t.Logf("flood: %d blocks by %d keys in %v (%.0f/s)", fr.n, len(keys), fr.took.Round(time.Millisecond), float64(fr.n)/fr.took.Seconds())
	if len(late) > 0 {
		t.Errorf("%d honest lines typed %v or more before the flood ended were not on every chain when it did: %v", len(late), landWithin, late[:min(5, len(late))])
	}
	if drops := a.status(t).Drops; drops["new_author_rate_limited"]+drops["author_rate_limited"] == 0 {
		t.Error("a limited none of the attacker's blocks: the flood did not exceed the budget")
	}
	// a relayed the flood it stored: b throttles it not, nor c b.
	for i, p := range procs[1:] {
		if n := p.status(t).Drops["peer_throttled"]; n > 0 {
			t.Errorf("node %c throttled an honest relay of the flood (%d blocks dropped unread)", 'b'+i, n)
		}
	}
}

// floodSeconds is how long a flood test floods: GOSSIPCHAIN_FLOOD_SECONDS,
// or def.
func floodSeconds(t *testing.T, def int) int { return envInt(t, "GOSSIPCHAIN_FLOOD_SECONDS", def) }

// envInt is the positive number in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// sybilSigners returns n keys, the same on every run.
func sybilSigners(n int) []*ledger.Signer {
	out := make([]*ledger.Signer, n)
	for i := range out {
		seed := sha256.Sum256([]byte(fmt.Sprintf("sybil key %d", i)))
		out[i] = ledger.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	}
	return out
}

// landPoll is how often watchLines reads the nodes' chains; landWithin is
// how soon an honest line typed during a flood must be on every chain (a
// race build on a busy machine took up to 2.5 s).
const (
	landPoll   = 250 * time.Millisecond
	landWithin = 5 * time.Second
)

// watchLines reads every node's main chain every landPoll until the test
// ends, noting when each line starting "honest " was first on all of
// them; the returned func stops it and gives those times.
func watchLines(t *testing.T, procs []*proc) func() map[string]time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu  sync.Mutex
		all = map[string]time.Time{}
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		on := map[string]int{} // line -> nodes it is on, this round
		for ctx.Err() == nil {
			clear(on)
			for _, p := range procs {
				chain, err := p.n.Chain()
				if err != nil {
					continue // counted as absent this round
				}
				mine := map[string]bool{}
				for _, blk := range chain {
					if strings.HasPrefix(blk.Data, "honest ") && !mine[blk.Data] {
						mine[blk.Data] = true
						on[blk.Data]++
					}
				}
			}
			now := time.Now()
			mu.Lock()
			for l, n := range on {
				if _, ok := all[l]; !ok && n == len(procs) {
					all[l] = now
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(landPoll):
			}
		}
	}()
	stop := func() map[string]time.Time {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return all
	}
	t.Cleanup(func() { stop() })
	return stop
}

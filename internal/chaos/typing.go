package chaos

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"gossipchain/internal/harness"
)

// typist posts lines to random running nodes and remembers which were
// acknowledged.
type typist struct {
	seed  uint64
	c     *cluster
	mu    sync.Mutex     // guards the maps
	acked map[string]int // line -> the node that acknowledged it
	unack map[string]bool
}

func newTypist(seed uint64, c *cluster) *typist {
	return &typist{seed: seed, c: c, acked: map[string]int{}, unack: map[string]bool{}}
}

// typeLines posts a line to a random running node every 1/rate s until
// stop is closed.
func (t *typist) typeLines(rate int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			wg.Wait()
			return
		case <-tick.C:
		}
		up := t.c.upNodes()
		if len(up) == 0 {
			continue
		}
		ks := slices.Sorted(maps.Keys(up))
		k := ks[rand.IntN(len(ks))]
		line := fmt.Sprintf("chaos %d line %05d", t.seed, seq)
		select {
		case sem <- struct{}{}:
		default:
			continue // many posts are hanging: a node is frozen
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.post(k, up[k], line)
		}()
	}
}

func (t *typist) post(k int, n *harness.Node, line string) {
	_, err := n.Append(line)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.acked[line] = k
	} else {
		t.unack[line] = true
	}
}

// counts is how many lines were acknowledged and how many not.
func (t *typist) counts() (acked, unacked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.acked), len(t.unack)
}

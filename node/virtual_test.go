package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/x/simlibp2p"
)

// Tests of timing and convergence run on the simulated network (QUIC over
// go-libp2p's simnet) inside testing/synctest, as the simulator does: the
// real node stack on a virtual clock, so a test waits minutes of virtual
// time in a moment of real time, and a slow or busy machine changes
// nothing it asserts.

// virtualNet starts count nodes on a simulated network, 10 ms apart on
// 1 Gbps links, node i given the nodes peers(i) (all earlier) to dial, and
// waits until every node is in the blocks mesh. It runs inside the
// synctest bubble of t, and closes the nodes when t ends.
func virtualNet(t *testing.T, count int, peers func(i int) []int) []*Node {
	t.Helper()
	s := newSimNet(t, simParams{seed: 1, latency: "flat", flat: 10 * time.Millisecond, flood: true, checkCost: 100 * time.Microsecond})
	t.Cleanup(s.close)
	for i := range count {
		s.addNode(0, 1000*simlibp2p.OneMbps, peers(i))
	}
	s.meshed()
	return s.nodes
}

// lineWiring is a line: node i dials node i-1.
func lineWiring(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

// Three nodes of a line typing at once fork the chain; the losing lines
// are appended again, so every node ends on one chain holding all 15, each
// once.
func TestForksConverge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nodes := virtualNet(t, 5, lineWiring)
		var (
			wg    sync.WaitGroup
			lines []string
		)
		for _, origin := range []int{0, 2, 4} {
			for i := range 5 {
				lines = append(lines, fmt.Sprintf("line %d from node %d", i, origin))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 5 {
					if _, err := nodes[origin].Append(context.Background(), fmt.Sprintf("line %d from node %d", i, origin)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		waitConverged(t, 30*time.Second, lines, nodes...)
		for _, n := range nodes {
			if d := n.Drops(); d["malformed"]+d["invalid_hash"]+d["bad_signature"] != 0 {
				t.Errorf("honest traffic was rejected: %v", d)
			}
		}
	})
}

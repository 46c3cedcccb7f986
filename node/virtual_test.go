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
// synctest bubble of t, and closes the nodes when t ends; s.crash and
// s.start stop a node and start it again on its data dir.
func virtualNet(t *testing.T, count int, peers func(i int) []int) *simNet {
	t.Helper()
	s := newSimNet(t, simParams{seed: 1, latency: "flat", flat: 10 * time.Millisecond, flood: true, checkCost: 100 * time.Microsecond})
	t.Cleanup(s.close)
	for i := range count {
		s.addNode(0, 1000*simlibp2p.OneMbps, peers(i))
	}
	s.meshed()
	return s
}

// starWiring: every node dials node 0.
func starWiring(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{0}
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
		nodes := virtualNet(t, 5, lineWiring).nodes
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

// A burst of 1,000 blocks typed on one node reaches every node of a star,
// and a node behind a leaf, which gets only blocks relayed twice: every
// node ends with the origin's chain, block for block.
func TestBurstReachesEveryNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const blocks = 1000
		nodes := virtualNet(t, 6, func(i int) []int {
			if i == 5 {
				return []int{4}
			}
			return starWiring(i)
		}).nodes
		origin := nodes[1]
		for i := range blocks {
			if _, err := origin.Append(context.Background(), fmt.Sprintf("burst %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		waitSameHead(t, 60*time.Second, blocks, nodes...)
		want, _ := origin.Chain().Range(0, blocks+1)
		for _, n := range nodes {
			got, err := n.Chain().Range(0, blocks+1)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if *got[i] != *want[i] {
					t.Fatalf("node %s block %d differs", n.ID(), i)
				}
			}
		}
	})
}

// A node whose last peer leaves says it is alone (status and one event),
// and says so again when the peer returns on the same data dir; a line
// typed then reaches the returned peer.
func TestAloneAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := virtualNet(t, 2, lineWiring)
		a := s.nodes[0]
		alone := collectEvents(t, a, "alone")
		if a.Status().Alone {
			t.Fatal("alone while connected")
		}
		s.crash(1)
		waitFor(t, 10*time.Second, "a to say it is alone", func() bool { return a.Status().Alone })
		s.start(1) // the same node back
		waitFor(t, 10*time.Second, "a to say it has a peer again", func() bool { return !a.Status().Alone })
		if _, err := a.Append(context.Background(), "after the return"); err != nil {
			t.Fatal(err)
		}
		waitSameHead(t, 10*time.Second, 1, a, s.nodes[1])
		var calls []bool
		waitFor(t, 5*time.Second, "two alone events", func() bool {
			calls = nil
			for _, e := range alone() {
				calls = append(calls, e.Alone)
			}
			return len(calls) >= 2
		})
		if len(calls) != 2 || !calls[0] || calls[1] {
			t.Fatalf("alone events %v, want [true false]", calls)
		}
	})
}

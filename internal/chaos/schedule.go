package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Fault is one step of the schedule.
type Fault struct {
	At     time.Duration // after the start
	Kind   string        // kill, pause, partition, join
	Node   int           // kill, pause: the node (1-based)
	Side   []int         // partition: the nodes cut from the others
	Length time.Duration // how long the fault lasts
}

func (f Fault) String() string {
	return fmt.Sprintf("%5.1fs %s", f.At.Seconds(), f.what())
}

// what is the fault without its time.
func (f Fault) what() string {
	switch f.Kind {
	case "kill":
		return fmt.Sprintf("kill -9 node %d, restart after %.1fs", f.Node, f.Length.Seconds())
	case "pause":
		return fmt.Sprintf("freeze node %d for %.1fs", f.Node, f.Length.Seconds())
	case "partition":
		return fmt.Sprintf("cut %v from the rest for %.1fs", f.Side, f.Length.Seconds())
	}
	return "a new node joins"
}

// Schedule draws the faults for a run of length d on n nodes: one at a
// time, a short gap between them. A seed always gives the same schedule.
func Schedule(seed uint64, n int, d time.Duration) []Fault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	span := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(time.Second))
	}
	var out []Fault
	nodes, joins := n, 0
	for t := span(1, 3); t < d-2*time.Second; {
		f := Fault{At: t}
		switch r := rng.IntN(100); {
		case r < 30:
			f.Kind, f.Node, f.Length = "kill", 1+rng.IntN(nodes), span(0.5, 3)
		case r < 55:
			f.Kind, f.Node, f.Length = "pause", 1+rng.IntN(nodes), span(0.5, 3)
		case r < 85 || joins == 2:
			perm := rng.Perm(nodes)
			side := perm[:1+rng.IntN(nodes-1)]
			for _, i := range side {
				f.Side = append(f.Side, i+1)
			}
			slices.Sort(f.Side)
			f.Kind, f.Length = "partition", span(1.5, 5)
			if rng.IntN(4) == 0 {
				// A long cut: past the settle time, and on a side that
				// types enough, past the finality depth: the halves
				// merge by the members' deep-fork rule.
				f.Length = span(20, 40)
			}
		default:
			f.Kind = "join"
			nodes++
			joins++
		}
		out = append(out, f)
		t += f.Length + span(1, 3)
	}
	return out
}

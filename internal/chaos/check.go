package chaos

import (
	"fmt"
	"maps"
	"slices"

	"gossipchain/ledger"
)

// verdict is what the checker found on the nodes' chains.
type verdict struct {
	violation string // the first one found; "" if none
	height    int    // of the common chain
	landed    int    // unanswered lines that are on it anyway
}

// check is the checker: every node's chain (node k's is chains[k-1])
// identical, starting at genesis, every block linked, hashed and signed,
// none twice; every acknowledged line (acked: line -> the node that
// acknowledged it) on it exactly once, no line twice.
func check(chains [][]ledger.Block, acked map[string]int, unacked map[string]bool) verdict {
	if v := differ(chains); v != "" {
		return verdict{violation: v}
	}
	ref := chains[0]
	count, v := wellFormed(ref)
	if v != "" {
		return verdict{violation: v}
	}
	for _, l := range slices.Sorted(maps.Keys(acked)) {
		if count[l] != 1 {
			return verdict{violation: fmt.Sprintf("line %q, acknowledged by node %d, is on the chain %d times", l, acked[l], count[l])}
		}
	}
	for _, l := range slices.Sorted(maps.Keys(count)) {
		if count[l] > 1 {
			return verdict{violation: fmt.Sprintf("line %q is on the chain %d times", l, count[l])}
		}
	}
	landed := 0
	for l := range unacked {
		landed += count[l]
	}
	return verdict{height: len(ref) - 1, landed: landed}
}

// differ names the first difference between node 1's chain and another's.
func differ(chains [][]ledger.Block) string {
	ref := chains[0]
	for i, c := range chains[1:] {
		k := i + 2
		if len(c) != len(ref) {
			return fmt.Sprintf("node %d has %d blocks, node 1 %d", k, len(c), len(ref))
		}
		for j := range c {
			if c[j] != ref[j] {
				return fmt.Sprintf("block %d differs: node %d has %s, node 1 %s", j, k, c[j].Short(), ref[j].Short())
			}
		}
	}
	return ""
}

// wellFormed checks one chain block by block and counts its lines.
func wellFormed(chain []ledger.Block) (map[string]int, string) {
	if len(chain) == 0 || chain[0].Hash != ledger.Genesis().Hash {
		return nil, "the chain does not start at genesis"
	}
	seen := map[string]bool{}
	count := map[string]int{}
	for i := 1; i < len(chain); i++ {
		b := &chain[i]
		switch {
		case b.Index != uint64(i) || b.PrevHash != chain[i-1].Hash:
			return nil, fmt.Sprintf("block %d %s does not link to block %d", i, b.Short(), i-1)
		case seen[b.Hash]:
			return nil, fmt.Sprintf("block %s is on the chain twice", b.Short())
		}
		if err := b.CheckSanity(); err != nil {
			return nil, fmt.Sprintf("block %d: %v", i, err)
		}
		seen[b.Hash] = true
		count[b.Data]++
	}
	return count, ""
}

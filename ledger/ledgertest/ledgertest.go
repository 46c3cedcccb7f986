// Package ledgertest makes chains for tests of the packages built on the
// ledger (node, node/chainsync), as net/http/httptest does for servers.
package ledgertest

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"gossipchain/ledger"
)

// SignRun returns count blocks by a test author on top of parent. Their
// timestamps end two minutes ago: older than the author budget's minute
// of young blocks, so they are history to a sync, not a flood.
func SignRun(tb testing.TB, parent *ledger.Block, count int) []*ledger.Block {
	tb.Helper()
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	start := time.Now().Add(-2*time.Minute - time.Duration(count)*time.Millisecond)
	var out []*ledger.Block
	for i := 0; i < count; i++ {
		b, err := s.Sign(parent, fmt.Sprintf("filled %d", i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
		parent = b
	}
	return out
}

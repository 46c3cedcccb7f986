package node

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// The cache answers what protocol.MessageID answers, for blocks, for the
// same block spaced differently and for garbage, and stays bounded.
func TestMessageIDCache(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	b, err := s.Sign(ledger.Genesis(), "cached", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := protocol.EncodeBlock(b)
	m := newMessageIDs()
	m.published(data, b)
	for _, in := range [][]byte{data, []byte("not a block"), append(data, ' '), data} {
		if got, want := m.id(in), protocol.MessageID(in); got != want {
			t.Errorf("id(%.20q) = %s, want %s", in, got, want)
		}
	}
	if m.id(data) != m.id(append(data, ' ')) {
		t.Error("the same block spaced differently got another ID")
	}
	for i := range 3 * messageKeep {
		m.id([]byte(fmt.Sprint(i)))
	}
	if n := len(m.cur) + len(m.prev); n > 2*messageKeep {
		t.Errorf("%d entries, bound %d", n, 2*messageKeep)
	}
}

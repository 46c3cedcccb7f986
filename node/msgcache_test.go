package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// The cache answers what protocol.MessageID and DecodeMessage answer,
// forgets a block once the validator took it, and stays bounded.
func TestMessageCache(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	b, err := s.Sign(ledger.Genesis(), "cached", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := protocol.EncodeBlock(b)
	m := newMessages()
	for _, in := range [][]byte{data, []byte("not a block"), append(data, ' ')} {
		if got, want := m.id(in), protocol.MessageID(in); got != want {
			t.Errorf("id(%.20q) = %s, want %s", in, got, want)
		}
	}
	if m.id(data) != m.id(append(data, ' ')) {
		t.Error("the same block spaced differently got another ID")
	}
	d := m.decode(data)
	if d.err != nil || d.block == nil || *d.block != *b {
		t.Fatalf("decode: %+v", d)
	}
	if e := m.cur[sha256.Sum256(data)]; e.block != nil || e.id != d.id {
		t.Errorf("after validation the entry still holds the block: %+v", e)
	}
	if again := m.decode(data); again.block == nil || *again.block != *b {
		t.Errorf("a second decode lost the block: %+v", again)
	}
	if bad := m.decode([]byte("{")); bad.err == nil || bad.block != nil {
		t.Errorf("garbage decoded: %+v", bad)
	}
	for i := range 3 * messageKeep {
		m.id([]byte(fmt.Sprint(i)))
	}
	if n := len(m.cur) + len(m.prev); n > 2*messageKeep {
		t.Errorf("%d entries, bound %d", n, 2*messageKeep)
	}
}

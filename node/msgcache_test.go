package node

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// signedMessage is a block of line on genesis and its gossip message.
func signedMessage(t *testing.T, line string) (*ledger.Block, []byte) {
	t.Helper()
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	b, err := s.Sign(ledger.Genesis(), line, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := protocol.EncodeBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, data
}

// The cache answers what protocol.MessageID answers, for blocks, for the
// same block spaced differently and for garbage, and stays bounded.
func TestMessageIDCache(t *testing.T) {
	b, data := signedMessage(t, "cached")
	m := newMessageIDs(newPendingBlocks())
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

// A new message's block waits, decoded, for the validator to take it once;
// the blocks waiting stay bounded.
func TestDecodedOnce(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	m := newMessageIDs(newPendingBlocks())
	parent := ledger.Genesis()
	for i := range 2*decodedKeep + 10 {
		b, err := s.Sign(parent, fmt.Sprintf("d%d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := protocol.EncodeBlock(b)
		id := m.id(data)
		if i == 0 {
			got, ok := m.take(id)
			if !ok || *got.block != *b {
				t.Fatalf("take: %+v %v", got, ok)
			}
			got.end()
			if _, again := m.take(id); again {
				t.Fatal("taken twice")
			}
		}
		parent = b
	}
	if _, ok := m.take("raw:nothing"); ok {
		t.Fatal("took a block for a raw ID")
	}
	if len(m.decoded) > decodedKeep {
		t.Fatalf("%d decoded blocks waiting, bound %d", len(m.decoded), decodedKeep)
	}
	if n := len(m.pending.m); n != len(m.decoded) {
		t.Fatalf("%d blocks pending, %d decoded and waiting: a pending entry outlived its block", n, len(m.decoded))
	}
}

// Blocks waiting for the validator are handed out to check ahead once
// each, in the order they were named; one taken by its validator is not.
func TestCheckAheadOnce(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	m := newMessageIDs(newPendingBlocks())
	parent := ledger.Genesis()
	var ids []string
	for i := range 10 {
		b, err := s.Sign(parent, fmt.Sprintf("a%d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := protocol.EncodeBlock(b)
		ids = append(ids, m.id(data))
		parent = b
	}
	m.take(ids[0])
	first, done := m.ahead(4)
	if len(first) != 4 || first[0].Data != "a1" || first[3].Data != "a4" {
		t.Fatalf("first batch: %d blocks, from %q", len(first), first[0].Data)
	}
	rest, done2 := m.ahead(64)
	if len(rest) != 5 || rest[0].Data != "a5" {
		t.Fatalf("second batch: %d blocks", len(rest))
	}
	if none, _ := m.ahead(64); len(none) != 0 {
		t.Fatalf("handed out %d blocks twice", len(none))
	}
	d, _ := m.take(ids[2])
	select {
	case <-d.checked:
		t.Fatal("released before its batch was checked")
	default:
	}
	done()
	done2()
	<-d.checked
}

package protocol

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
)

func testBlock(t *testing.T) *ledger.Block {
	t.Helper()
	b, err := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32))).Sign(ledger.Genesis(), "hi", time.UnixMilli(1735689600001))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeBlock(t *testing.T) {
	good, _ := EncodeBlock(testBlock(t))
	cases := []struct {
		name string
		msg  string
		ok   bool
	}{
		{"block", string(good), true},
		{"spaced", strings.ReplaceAll(string(good), ",", " , "), true},
		{"not json", "hello", false},
		{"unknown field", strings.Replace(string(good), "{", `{"extra":1,`, 1), false},
		{"two objects", string(good) + string(good), false},
		{"wrong type", strings.Replace(string(good), `"index":1`, `"index":"1"`, 1), false},
		{"oversize", `{"data":"` + strings.Repeat("x", MaxBlockMessageBytes) + `"}`, false},
	}
	for _, tc := range cases {
		if _, err := DecodeBlock([]byte(tc.msg)); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestMessageID(t *testing.T) {
	b := testBlock(t)
	enc, _ := EncodeBlock(b)
	id := MessageID(enc)
	if len(id) != 32 || strings.HasPrefix(id, "raw:") {
		t.Fatalf("id %q", id)
	}
	// The same block spaced differently is the same message.
	if got := MessageID([]byte(strings.ReplaceAll(string(enc), ",", ", "))); got != id {
		t.Errorf("respaced block has another ID")
	}
	// A tampered copy that keeps the hash and signature fields is not.
	tampered := *b
	tampered.Data = "tampered"
	te, _ := EncodeBlock(&tampered)
	if MessageID(te) == id {
		t.Errorf("tampered copy shares the real block's ID")
	}
	badSig := *b
	badSig.Signature = strings.Repeat("00", 64)
	be, _ := EncodeBlock(&badSig)
	if MessageID(be) == id {
		t.Errorf("copy with a broken signature shares the real block's ID")
	}
	// Nor is a copy whose hash field is wrong (it is outside the hash):
	// were it, rejecting it first would make a node drop the real block.
	badHash := *b
	badHash.Hash = strings.Repeat("ab", 32)
	bh, _ := EncodeBlock(&badHash)
	if got := MessageID(bh); got == id || !strings.HasPrefix(got, "raw:") {
		t.Errorf("copy with a wrong hash field has ID %q (the real block's is %q)", got, id)
	}
	if got, blk := DecodeMessage(enc); got != id || blk == nil || *blk != *b {
		t.Errorf("DecodeMessage: %q %+v", got, blk)
	}
	if got := MessageID([]byte("garbage")); !strings.HasPrefix(got, "raw:") || len(got) != 36 {
		t.Errorf("garbage id %q", got)
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	blk, _ := s.Sign(ledger.Genesis(), "a line typed on a console, about as long as people type", time.UnixMilli(1767225600000))
	data, _ := EncodeBlock(blk)
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeBlock(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var out ledger.Block
			if err := UnmarshalStrict(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

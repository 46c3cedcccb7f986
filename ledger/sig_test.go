package ledger

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// zip215Signature signs hash with key the way no RFC 8032 signer would: R
// is the identity point written non-canonically (x = 0 with its sign bit
// set: 01 00 .. 00 80) and S = k*a, so [S]B = [k]A = R + [k]A holds. ZIP-215
// decodes R and accepts; a strict check that compares R's bytes with the
// canonical encoding (Go's crypto/ed25519) rejects. Only the key's owner can
// make one: it needs a.
func zip215Signature(t *testing.T, key ed25519.PrivateKey, hash []byte) []byte {
	t.Helper()
	h := sha512.Sum512(key.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a, err := scalar.NewFromBytesModOrder(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 32)
	r[0], r[31] = 1, 0x80
	d := sha512.New()
	d.Write(r)
	d.Write(key.Public().(ed25519.PublicKey))
	d.Write(hash)
	k, err := scalar.NewFromBytesModOrderWide(d.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := make([]byte, 32)
	if err := scalar.New().Mul(k, a).ToBytes(s); err != nil {
		t.Fatal(err)
	}
	return append(r, s...)
}

// The vector in docs/PROTOCOL.md ("The signature rule").
const (
	zip215VectorHash = "00d0d3c5f968c46864e3066f07005bd2de5b927e3e582838c4a63bc64f8fb507"
	zip215VectorSig  = "0100000000000000000000000000000000000000000000000000000000000080f6493c4db3fbd6d57b9431f42afde80fcff17891ce0d7bba84300fe3295ae40b"
)

func TestSignatureRuleZIP215(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	s := NewSigner(key)
	b := &Block{Index: 1, Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), Data: "zip-215", PrevHash: Genesis().Hash}
	if err := s.Seal(b); err != nil {
		t.Fatal(err)
	}
	sum, _ := hex.DecodeString(b.Hash)
	sig := zip215Signature(t, key, sum)
	if b.Hash != zip215VectorHash || hex.EncodeToString(sig) != zip215VectorSig {
		t.Fatalf("the vector changed: author %s\nhash %s\nsignature %x", b.Author, b.Hash, sig)
	}
	if ed25519.Verify(key.Public().(ed25519.PublicKey), sum, sig) {
		t.Fatal("crypto/ed25519 accepted the non-canonical R: the vector shows nothing")
	}
	b.Signature = hex.EncodeToString(sig)
	if err := b.CheckSanity(); err != nil {
		t.Fatalf("alone: %v; ZIP-215 accepts it", err)
	}
	// Alone and in a batch, with the author's key as decoded and as a
	// chain's key cache expands it: every path agrees.
	keys := newKeyCache()
	if err := b.checkSanity(keys); err != nil {
		t.Fatalf("alone, expanded key: %v; ZIP-215 accepts it", err)
	}
	for _, kc := range []*keyCache{nil, keys} {
		if errs := checkRun([]*Block{b, b}, kc, nil, nil); errs[0] != nil || errs[1] != nil {
			t.Fatalf("in a batch (key cache %v): %v; ZIP-215 accepts it", kc != nil, errs)
		}
	}
	// S not below the group order is refused by both.
	bad := *b
	bad.Signature = b.Signature[:64] + "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"
	if err := bad.CheckSanity(); Code(err) != ErrBadSignature {
		t.Fatalf("non-canonical S alone: %v", err)
	}
	if err := bad.checkSanity(keys); Code(err) != ErrBadSignature {
		t.Fatalf("non-canonical S alone, expanded key: %v", err)
	}
	for _, kc := range []*keyCache{nil, keys} {
		if errs := checkRun([]*Block{&bad, b}, kc, nil, nil); Code(errs[0]) != ErrBadSignature || errs[1] != nil {
			t.Fatalf("non-canonical S in a batch (key cache %v): %v", kc != nil, errs)
		}
	}
}

// A batch with one bad signature: that block, and only it, is named.
func TestBatchNamesTheBadSignature(t *testing.T) {
	run := build(t, signer(1), Genesis(), 3*sigBatch+5, "b")
	bad := *run[100]
	sig := []byte(bad.Signature)
	if sig[10] = '0'; bad.Signature[10] == '0' { // another hex digit
		sig[10] = '1'
	}
	bad.Signature = string(sig)
	run[100] = &bad
	for i, err := range checkRun(run, nil, nil, nil) {
		if (i == 100) != (err != nil) {
			t.Fatalf("block %d: %v", i, err)
		}
		if i == 100 && Code(err) != ErrBadSignature {
			t.Fatalf("bad block: %v, want bad_signature", err)
		}
	}
	c, _ := openTest(t)
	res, err := c.Add(run...)
	if Code(err) != ErrBadSignature || len(res.Added) != 100 || c.Height() != 100 {
		t.Fatalf("Add: %d added, height %d, %v; want the 100 before the bad one", len(res.Added), c.Height(), err)
	}
}

// Runs too short for a batch are checked one signature at a time, by the
// same rule: a bad signature anywhere in a run of 1 to batchFrom+1 blocks
// is named, and only it.
func TestShortRunsNameTheBadSignature(t *testing.T) {
	good := build(t, signer(1), Genesis(), batchFrom+1, "s")
	for n := 1; n <= batchFrom+1; n++ {
		for badAt := range n {
			run := slices.Clone(good[:n])
			bad := *run[badAt]
			bad.Signature = strings.Repeat("00", 64)
			run[badAt] = &bad
			for i, err := range checkRun(run, nil, nil, nil) {
				if (i == badAt) != (err != nil) || (i == badAt && Code(err) != ErrBadSignature) {
					t.Fatalf("run of %d, bad at %d: block %d: %v", n, badAt, i, err)
				}
			}
		}
		for i, err := range checkRun(good[:n], nil, nil, nil) {
			if err != nil {
				t.Fatalf("run of %d good blocks: block %d: %v", n, i, err)
			}
		}
	}
}

// CheckAhead remembers the blocks of a batch that pass, so their own check
// finds them checked, and none that fail: a bad signature among good ones
// is still refused when its block is checked, and a good block of that
// batch is still accepted.
func TestCheckAhead(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 8, "ahead")
	bad := *run[3]
	sig := []byte(bad.Signature)
	sig[0] = "10"[min(1, int(sig[0]-'0'))] // another hex digit: well formed, not the signature
	bad.Signature = string(sig)
	batch := append(append([]*Block{}, run[:3]...), &bad)
	batch = append(batch, run[4:]...)
	c.CheckAhead(batch...)
	for i, b := range batch {
		_, err := c.Check(b).Valid()
		if i == 3 {
			if Code(err) != ErrBadSignature {
				t.Fatalf("the tampered block: %v, want a bad signature", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if !c.verified.has(b) {
			t.Fatalf("block %d passed but is not remembered", i)
		}
	}
	if c.verified.has(&bad) {
		t.Fatal("the tampered block was remembered as checked")
	}
}

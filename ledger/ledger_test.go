package ledger

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z

func signer(seed byte) *Signer {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return NewSigner(ed25519.NewKeyFromSeed(s))
}

func openTest(t *testing.T) (*Chain, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.db")
	c, err := Open(path, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// build returns n blocks extending parent, signed by s, one second apart.
func build(t testing.TB, s *Signer, parent *Block, n int, tag string) []*Block {
	t.Helper()
	var out []*Block
	for i := 0; i < n; i++ {
		b, err := s.Sign(parent, tag+string(rune('a'+i%26)), parent.Time().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		parent = b
	}
	return out
}

func TestVector(t *testing.T) {
	// The worked example of docs/PROTOCOL.md: seed bytes 0x00..0x1f.
	s := signer(0)
	g := Genesis()
	b, err := s.Sign(g, "hello, gossipchain", time.UnixMilli(1735689600001))
	if err != nil {
		t.Fatal(err)
	}
	want := Block{
		Index:     1,
		Timestamp: 1735689600001,
		Data:      "hello, gossipchain",
		PrevHash:  vectorGenesis,
		Author:    vectorAuthor,
		Hash:      vectorHash,
		Signature: vectorSignature,
	}
	if g.Hash != vectorGenesis {
		t.Errorf("genesis hash = %s, want %s", g.Hash, vectorGenesis)
	}
	if *b != want {
		t.Errorf("vector block =\n%+v\nwant\n%+v", *b, want)
	}
}

func TestCheck(t *testing.T) {
	s, other := signer(1), signer(100)
	g := Genesis()
	good := build(t, s, g, 1, "x")[0]
	resign := func(b *Block) *Block { // a block with valid hash and signature after edits
		nb, err := s.Sign(&Block{Index: b.Index - 1, Hash: b.PrevHash}, b.Data, b.Time())
		if err != nil {
			t.Fatal(err)
		}
		return nb
	}
	mut := func(f func(b *Block)) *Block { b := *good; f(&b); return &b }
	cases := []struct {
		name  string
		block *Block
		code  ErrorCode
	}{
		{"valid", good, 0},
		{"tampered data", mut(func(b *Block) { b.Data = "y" }), ErrBadHash},
		{"wrong hash", mut(func(b *Block) { b.Hash = strings.Repeat("ab", 32) }), ErrBadHash},
		{"uppercase hash", mut(func(b *Block) { b.Hash = strings.ToUpper(b.Hash) }), ErrMalformed},
		{"forged author", mut(func(b *Block) { b.Author = other.ID(); b.Hash, _ = b.ComputeHash() }), ErrBadSignature},
		{"bad signature", mut(func(b *Block) { b.Signature = strings.Repeat("00", 64) }), ErrBadSignature},
		{"short signature", mut(func(b *Block) { b.Signature = "00" }), ErrMalformed},
		{"author not a peer ID", mut(func(b *Block) { b.Author = "alice" }), ErrBadAuthor},
		{"empty data", mut(func(b *Block) { b.Data = "" }), ErrMalformed},
		{"oversize data", mut(func(b *Block) { b.Data = strings.Repeat("x", MaxDataBytes+1) }), ErrOversize},
		{"genesis index", mut(func(b *Block) { b.Index = 0 }), ErrGenesis},
		{"wrong index", resign(mut(func(b *Block) { b.Index = 5 })), ErrBadIndex},
		{"unknown parent", resign(mut(func(b *Block) { b.PrevHash = strings.Repeat("cd", 32) })), ErrUnknownParent},
		{"future timestamp", resign(mut(func(b *Block) { b.Timestamp = testNow.Add(MaxClockDrift + time.Second).UnixMilli() })), ErrFutureTimestamp},
		{"bad prevHash", mut(func(b *Block) { b.PrevHash = "zz" }), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := openTest(t)
			_, err := c.Add(tc.block)
			if got := Code(err); got != tc.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.code)
			}
			wantHeight := uint64(0)
			if tc.code == 0 {
				wantHeight = 1
			}
			if c.Height() != wantHeight {
				t.Fatalf("height = %d, want %d", c.Height(), wantHeight)
			}
			if tc.code == 0 {
				if _, err := c.Add(tc.block); Code(err) != ErrDuplicate {
					t.Fatalf("second add: %v, want duplicate", err)
				}
			}
		})
	}
}

func TestProvable(t *testing.T) {
	for _, c := range []ErrorCode{ErrMalformed, ErrBadHash, ErrBadSignature, ErrBadIndex, ErrOversize} {
		if !c.Provable() {
			t.Errorf("%v should be provable", c)
		}
	}
	for _, c := range []ErrorCode{ErrUnknownParent, ErrDuplicate, ErrFutureTimestamp} {
		if c.Provable() {
			t.Errorf("%v should not be provable", c)
		}
	}
}

// TestForkChoiceOrder feeds the same blocks of a forked tree in many orders
// and checks that every order ends at the same head and main chain.
func TestForkChoiceOrder(t *testing.T) {
	a, b, d := signer(1), signer(50), signer(90)
	g := Genesis()
	trunk := build(t, a, g, 3, "t")
	left := build(t, b, trunk[2], 4, "l")  // height 7
	right := build(t, d, trunk[2], 4, "r") // height 7: tie broken by hash
	short := build(t, a, trunk[0], 2, "s") // height 3
	all := append(append(append(append([]*Block{}, trunk...), left...), right...), short...)
	want := left[3]
	if right[3].Hash < want.Hash {
		want = right[3]
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		order := append([]*Block{}, all...)
		if i == 1 {
			for l, r := 0, len(order)-1; l < r; l, r = l+1, r-1 {
				order[l], order[r] = order[r], order[l]
			}
		} else if i > 1 {
			rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		}
		c, _ := openTest(t)
		for _, blk := range order {
			if _, err := c.Add(blk); err != nil && Code(err) != ErrUnknownParent {
				t.Fatalf("order %d: add %d: %v", i, blk.Index, err)
			}
		}
		if h := c.Head(); h.Hash != want.Hash {
			t.Fatalf("order %d: head %d %s, want %d %s", i, h.Index, h.Short(), want.Index, want.Short())
		}
		if c.Orphans() != 0 {
			t.Fatalf("order %d: %d orphans left", i, c.Orphans())
		}
		chain, err := c.Range(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for j := 1; j < len(chain); j++ {
			if chain[j].PrevHash != chain[j-1].Hash || chain[j].Index != uint64(j) {
				t.Fatalf("order %d: main chain broken at %d", i, j)
			}
		}
		if len(chain) != 8 {
			t.Fatalf("order %d: main chain has %d blocks, want 8", i, len(chain))
		}
		c.Close()
	}
}

func TestReopen(t *testing.T) {
	c, path := openTest(t)
	s := signer(3)
	for i := 0; i < 5; i++ {
		if _, err := c.Append(s, "line"); err != nil {
			t.Fatal(err)
		}
	}
	// A better side branch forces a reorg that must survive reopening too.
	fork, _ := c.BlockAt(2)
	side := build(t, signer(7), fork, 5, "side")
	for _, b := range side {
		if _, err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	head := c.Head()
	if head.Hash != side[4].Hash {
		t.Fatalf("head %d, want side branch tip", head.Index)
	}
	before, _ := c.Range(0, 100)
	c.Close()

	c2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	after, _ := c2.Range(0, 100)
	if len(after) != len(before) || c2.Head().Hash != head.Hash {
		t.Fatalf("after reopen: %d blocks head %s, want %d head %s", len(after), c2.Head().Short(), len(before), head.Short())
	}
	for i := range before {
		if *before[i] != *after[i] {
			t.Fatalf("block %d differs after reopen", i)
		}
	}
	// The old branch is kept too: it is known, not re-added.
	old, _ := s.Sign(before[2], "x", before[2].Time().Add(time.Second))
	if _, err := c2.Add(old); err != nil {
		t.Fatalf("extending a stored side block: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: %v, want ErrCorrupt", err)
	}
	c, path := openTest(t)
	_ = c
	if _, err := Open(path); !errors.Is(err, ErrInUse) {
		t.Errorf("second open: %v, want ErrInUse", err)
	}
}

func TestOrphanPoolBound(t *testing.T) {
	c, _ := openTest(t)
	bs := build(t, signer(4), Genesis(), MaxOrphans+10, "o")
	for _, b := range bs[1:] {
		if _, err := c.Add(b); Code(err) != ErrUnknownParent {
			t.Fatalf("add %d: %v", b.Index, err)
		}
	}
	if c.Orphans() != MaxOrphans {
		t.Fatalf("orphans = %d, want %d", c.Orphans(), MaxOrphans)
	}
}

func TestAuthorRoundTrip(t *testing.T) {
	s := signer(9)
	pub, err := AuthorKey(s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if AuthorID(pub) != s.ID() || !strings.HasPrefix(s.ID(), "12D3KooW") {
		t.Fatalf("round trip %s", s.ID())
	}
	for _, bad := range []string{"", "12D3KooW", strings.Repeat("1", 52), strings.Repeat("0", 52), s.ID()[:51] + "0"} {
		if _, err := AuthorKey(bad); err == nil {
			t.Errorf("AuthorKey(%q) accepted", bad)
		}
	}
	// A chain's remembered keys answer the same, and its memory of them
	// stays bounded.
	kc := newKeyCache()
	for i := range 3*authorKeysKeep + 1 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		id := NewSigner(ed25519.NewKeyFromSeed(seed)).ID()
		k, err := kc.key(id)
		if err != nil || AuthorID(k.pub) != id || k.expanded == nil {
			t.Fatalf("author %d: %v", i, err)
		}
		if again, _ := kc.key(id); again != k {
			t.Fatalf("author %d: not remembered", i)
		}
	}
	if n := kc.len(); n > 2*authorKeysKeep {
		t.Errorf("%d author keys remembered, bound %d", n, 2*authorKeysKeep)
	}
}

// HasBlock answers like Has, side branches and a reopened store included;
// a block above every stored height is answered from memory.
func TestHasBlock(t *testing.T) {
	c, path := openTest(t)
	main := build(t, signer(1), Genesis(), 6, "m")
	side := build(t, signer(2), main[1], 2, "s") // heights 3 and 4
	if _, err := c.Add(main...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(side...); err != nil {
		t.Fatal(err)
	}
	next := build(t, signer(1), main[5], 1, "n")[0]
	check := func(c *Chain, when string) {
		t.Helper()
		for _, b := range append(append([]*Block{Genesis()}, main...), side...) {
			if !c.HasBlock(b) || !c.Has(b.Hash) {
				t.Fatalf("%s: block %d %s stored, HasBlock %v, Has %v", when, b.Index, b.Short(), c.HasBlock(b), c.Has(b.Hash))
			}
		}
		if c.HasBlock(next) || c.Has(next.Hash) {
			t.Fatalf("%s: a block never stored is reported stored", when)
		}
		if c.top != 6 {
			t.Fatalf("%s: highest stored index %d, want 6", when, c.top)
		}
	}
	check(c, "open")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(path, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	check(c2, "reopened")
}

// TestAppendTimestamps: lines appended faster than one a millisecond keep
// the clock's time (so peers do not find them in the future), and a clock
// that steps back never makes a block older than its parent.
func TestAppendTimestamps(t *testing.T) {
	now := testNow
	path := filepath.Join(t.TempDir(), "chain.db")
	c, err := Open(path, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := signer(1)
	const lines = 3000
	for i := range lines {
		if _, err := c.Append(s, fmt.Sprintf("line %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if head := c.Head(); head.Timestamp != now.UnixMilli() {
		t.Fatalf("after %d lines in one millisecond the head's timestamp is %d ms ahead of the clock", lines, head.Timestamp-now.UnixMilli())
	}
	now = now.Add(-time.Hour) // the clock steps back
	res, err := c.Append(s, "after the step")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Added[0].Timestamp, testNow.UnixMilli(); got != want {
		t.Fatalf("a block made after the clock stepped back: timestamp %d, want its parent's %d", got, want)
	}
}

package ledger

import (
	"fmt"
	"testing"
)

// A copy of a block checked before skips the signature check; a copy whose
// contents or signature differ is checked in full and rejected.
func TestVerifiedCopies(t *testing.T) {
	c, _ := openTest(t)
	s := signer(1)
	b := build(t, s, Genesis(), 1, "v")[0]
	if _, err := c.Add(b); err != nil {
		t.Fatal(err)
	}
	copyOf := func(edit func(*Block)) *Block { d := *b; edit(&d); return &d }
	cases := []struct {
		name string
		b    *Block
		want ErrorCode
	}{
		{"same block", copyOf(func(*Block) {}), ErrDuplicate},
		{"data altered, hash kept", copyOf(func(d *Block) { d.Data = "forged" }), ErrBadHash},
		{"signature altered", copyOf(func(d *Block) { d.Signature = flipHex(d.Signature) }), ErrBadSignature},
		{"timestamp altered", copyOf(func(d *Block) { d.Timestamp++ }), ErrBadHash},
	}
	for _, tc := range cases {
		if _, err := c.Add(tc.b); Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	// Sync checks skip it too, and still find the forged one.
	if n, err := c.checkAll([]*Block{copyOf(func(*Block) {}), copyOf(func(d *Block) { d.Data = "x" })}); n != 1 || Code(err) != ErrBadHash {
		t.Errorf("checkAll: %d valid, %v; want 1, %s", n, err, ErrBadHash)
	}
}

// The set forgets the oldest generation instead of growing.
func TestVerifiedSetBounded(t *testing.T) {
	v := newVerifiedSet()
	first := &Block{Hash: "first", Signature: "s"}
	v.add(first)
	for i := range 2 * verifiedKeep {
		v.add(&Block{Hash: fmt.Sprint(i), Signature: "s"})
	}
	if n := len(v.cur) + len(v.prev); n > 2*verifiedKeep {
		t.Errorf("%d entries, bound %d", n, 2*verifiedKeep)
	}
	if _, ok := v.prev[verifiedKey{first.Hash, first.Signature}]; ok {
		t.Error("oldest entry still held after two generations")
	}
}

// flipHex changes the last hex digit of s.
func flipHex(s string) string {
	last := byte('0')
	if s[len(s)-1] == '0' {
		last = '1'
	}
	return s[:len(s)-1] + string(last)
}

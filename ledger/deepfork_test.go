package ledger

import (
	"fmt"
	"testing"
	"time"
)

// A branch that would replace settled history deeper than the finality
// depth is adopted when most of its blocks are by members (authors of the
// shared history below the fork), refused otherwise; lines typed here that
// an adopted deep branch takes off the main chain are appended again,
// exactly once, although memory had forgotten them.
func TestDeepForkMembers(t *testing.T) {
	c, now, main := openFinality(t) // 10 blocks by signer(1), finality 5
	me := signer(3)
	var mine []string
	for i := range 3 {
		line := fmt.Sprintf("mine %d", i)
		if _, err := c.Append(me, line); err != nil {
			t.Fatal(err)
		}
		mine = append(mine, line)
	}
	*now = now.Add(DefaultSettle)
	// Ten more on top: this node's lines are now settled and deeper than
	// the finality depth, and memory forgets them.
	if _, err := c.Add(build(t, signer(1), c.Head(), 10, "t")...); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(DefaultSettle)
	res, err := c.Add(build(t, signer(1), c.Head(), 1, "u")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Wait(); err != nil { // on disk: memory may forget
		t.Fatal(err)
	}
	if _, err := c.Add(build(t, signer(1), c.Head(), 1, "v")...); err != nil {
		t.Fatal(err)
	}
	head := c.Head()

	// An outsider's branch (signer 2 wrote nothing of the shared history).
	outsider := build(t, signer(2), main[3], 40, "o")
	_, err = c.Add(outsider...)
	rb, ok := Refused(err)
	if Code(err) != ErrTooDeep || !ok || c.Head().Hash != head.Hash {
		t.Fatalf("outsider's branch: err %v, head %d; want reorg_too_deep and the old head", err, c.Height())
	}
	if rb.ForkHeight != 4 || rb.ForkHash != main[3].Hash || rb.Members != 0 || rb.Blocks != 40 || rb.Head.Hash != outsider[39].Hash || rb.Replace != int(head.Index-4) {
		t.Fatalf("refused branch %+v", rb)
	}

	// The members' branch: signer(1) wrote the shared history.
	members := build(t, signer(1), main[3], 40, "m")
	res, err = c.Add(members...)
	if err != nil || !res.Reorg || c.Head().Hash != members[39].Hash {
		t.Fatalf("members' branch: err %v, head %d", err, c.Height())
	}
	if n := c.PendingLines(); n != len(mine) {
		t.Fatalf("%d lines pending after the deep switch, want %d", n, len(mine))
	}
	if _, err := c.Reappend(me, 100); err != nil {
		t.Fatal(err)
	}
	blocks, err := c.Range(0, int(c.Height())+1)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, b := range blocks {
		count[b.Data]++
	}
	for _, l := range mine {
		if count[l] != 1 {
			t.Errorf("line %q %d times on the main chain, want once", l, count[l])
		}
	}
	if c.PendingLines() != 0 {
		t.Errorf("%d lines still pending", c.PendingLines())
	}
}

// On a network with an authors list every block is by a listed author: a
// deep branch is the members' however it was written.
func TestDeepForkAuthorsList(t *testing.T) {
	now := testNow
	a, b := signer(1), signer(2)
	c, err := Open(t.TempDir()+"/chain.db", WithClock(func() time.Time { return now }), WithFinality(5), WithAuthors([]string{a.ID(), b.ID()}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	main := build(t, a, Genesis(), 10, "m")
	if _, err := c.Add(main...); err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultSettle)
	deep := build(t, b, main[1], 20, "d")
	if res, err := c.Add(deep...); err != nil || !res.Reorg || res.Dropped != 8 || c.Head().Hash != deep[19].Hash {
		t.Fatalf("listed authors' deep branch: err %v, head %d", err, c.Height())
	}
}

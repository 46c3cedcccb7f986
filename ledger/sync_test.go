package ledger

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAddRun(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 50, "r")
	res, err := c.Add(run...)
	if err != nil || len(res.Added) != 50 || res.Reorg || c.Height() != 50 {
		t.Fatalf("first run: %d added, reorg %v, height %d, err %v", len(res.Added), res.Reorg, c.Height(), err)
	}
	if res, err := c.Add(run...); Code(err) != ErrDuplicate || len(res.Added) != 0 {
		t.Fatalf("same run again: %d added, err %v", len(res.Added), err)
	}

	more := build(t, signer(1), run[49], 10, "m")
	bad := *more[5]
	bad.Data = "tampered"
	more[5] = &bad
	res, err = c.Add(more...)
	if Code(err) != ErrBadHash || len(res.Added) != 5 || c.Height() != 55 {
		t.Fatalf("tampered run: %d added, height %d, err %v; want the 5 before it stored and invalid_hash", len(res.Added), c.Height(), err)
	}

	unlinked := build(t, signer(2), &Block{Index: 70, Hash: strings.Repeat("ab", 32)}, 3, "u")
	if _, err := c.Add(unlinked...); Code(err) != ErrUnknownParent || c.Orphans() != 0 {
		t.Fatalf("unlinked run: err %v, %d orphans; want unknown_parent and nothing held", err, c.Orphans())
	}
}

func TestAddRunConnectsOrphans(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 20, "r")
	for _, b := range run[15:] { // gossip ahead of the sync
		if _, err := c.Add(b); Code(err) != ErrUnknownParent {
			t.Fatal(err)
		}
	}
	res, err := c.Add(run[:12]...)
	if err != nil || len(res.Added) != 12 || c.Orphans() != 5 {
		t.Fatalf("first part: %d added, %d orphans, err %v", len(res.Added), c.Orphans(), err)
	}
	res, err = c.Add(run[12:17]...)
	if err != nil || len(res.Added) != 8 || c.Height() != 20 || c.Orphans() != 0 {
		t.Fatalf("second part: %d added, height %d, %d orphans, err %v; want 3 + 5 connected", len(res.Added), c.Height(), c.Orphans(), err)
	}
}

func TestAddRunReorg(t *testing.T) {
	c, _ := openTest(t)
	main := build(t, signer(1), Genesis(), 10, "m")
	if _, err := c.Add(main...); err != nil {
		t.Fatal(err)
	}
	side := build(t, signer(2), main[2], 12, "s") // heights 4..15
	res, err := c.Add(side...)
	if err != nil || !res.Reorg || res.Dropped != 7 || c.Head().Hash != side[11].Hash {
		t.Fatalf("reorg: reorg %v dropped %d head %d, err %v", res.Reorg, res.Dropped, c.Height(), err)
	}
	assertLinked(t, c, 16)
}

// assertLinked checks the main chain is n blocks, each linked to the one
// before, and returns their data.
func assertLinked(t *testing.T, c *Chain, n int) []string {
	t.Helper()
	chain, err := c.Range(0, n+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != n {
		t.Fatalf("main chain has %d blocks, want %d", len(chain), n)
	}
	var data []string
	for i, b := range chain {
		if b.Index != uint64(i) || (i > 0 && b.PrevHash != chain[i-1].Hash) {
			t.Fatalf("main chain broken at %d", i)
		}
		data = append(data, b.Data)
	}
	return data
}

func TestReappendExactlyOnce(t *testing.T) {
	c, path := openTest(t)
	me := signer(1)
	var typed []*Block
	for _, line := range []string{"one", "two", "three"} {
		res, err := c.Append(me, line)
		if err != nil {
			t.Fatal(err)
		}
		typed = append(typed, res.Added[0])
	}
	// A longer branch from elsewhere takes the three lines off the main chain.
	other := build(t, signer(2), Genesis(), 5, "o")
	res, err := c.Add(other...)
	if err != nil || !res.Reorg || c.PendingLines() != 3 {
		t.Fatalf("after reorg: reorg %v, %d pending, err %v; want 3 pending", res.Reorg, c.PendingLines(), err)
	}

	// Pending work survives a restart.
	c.Close()
	c, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	if c.PendingLines() != 3 {
		t.Fatalf("after reopen: %d pending, want 3", c.PendingLines())
	}
	res, err = c.Reappend(me, 100)
	if err != nil || len(res.Added) != 3 || c.Height() != 8 || c.PendingLines() != 0 {
		t.Fatalf("reappend: %d added, height %d, %d pending, err %v", len(res.Added), c.Height(), c.PendingLines(), err)
	}
	if res, _ := c.Reappend(me, 100); len(res.Added) != 0 {
		t.Fatalf("second reappend added %d blocks", len(res.Added))
	}
	data := assertLinked(t, c, 9)
	if got := strings.Join(data[6:], ","); got != "one,two,three" {
		t.Fatalf("re-appended lines %q, want one,two,three in typed order", got)
	}

	// The first branch comes back, longer: the original blocks are on the
	// main chain again, so the re-appended copies are not pending.
	back := build(t, signer(3), typed[2], 7, "b") // height 10
	if res, err := c.Add(back...); err != nil || !res.Reorg {
		t.Fatalf("reorg back: %v", err)
	}
	if c.PendingLines() != 0 {
		t.Fatalf("%d pending after the original blocks returned, want 0", c.PendingLines())
	}
	data = assertLinked(t, c, 11)
	if got := strings.Join(data[1:4], ","); got != "one,two,three" {
		t.Fatalf("main chain starts %q", got)
	}
	c.Close()
	if c, err = Open(path); err != nil || c.PendingLines() != 0 {
		t.Fatalf("reopen: %v, pending %d", err, c.PendingLines())
	}
}

func TestLocatorAndAfter(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 300, "r")
	if _, err := c.Add(run...); err != nil {
		t.Fatal(err)
	}
	loc := c.Locator()
	if loc[0] != run[299].Hash || loc[len(loc)-1] != Genesis().Hash || len(loc) > 20 {
		t.Fatalf("locator of %d hashes from %s to %s", len(loc), short(loc[0]), short(loc[len(loc)-1]))
	}

	// A peer that holds the first 40 blocks and a branch of its own above.
	peer, _ := openTest(t)
	if _, err := peer.Add(run[:40]...); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Add(build(t, signer(2), run[39], 3, "p")...); err != nil {
		t.Fatal(err)
	}
	raw, found, err := c.After(peer.Locator(), 100, 1<<20)
	if err != nil || !found || len(raw) != 100 {
		t.Fatalf("after: %d blocks, found %v, err %v", len(raw), found, err)
	}
	var first Block
	if err := json.Unmarshal(raw[0], &first); err != nil || first.Hash != run[40].Hash {
		t.Fatalf("first block served is %d, want 41 (err %v)", first.Index, err)
	}
	if raw, _, _ := c.After(peer.Locator(), 100, 3*len(raw[0])); len(raw) != 3 {
		t.Fatalf("byte limit: %d blocks, want 3", len(raw))
	}
	if raw, _, _ := c.After([]string{run[299].Hash}, 100, 1<<20); len(raw) != 0 {
		t.Fatalf("peer at our head got %d blocks", len(raw))
	}
	if _, found, _ := c.After([]string{strings.Repeat("cd", 32)}, 100, 1<<20); found {
		t.Fatal("a locator from another network was found")
	}
}

// openFinality opens a chain with a finality depth of 5 and a clock the
// test moves, holding 10 main-chain blocks added at testNow.
func openFinality(t *testing.T) (*Chain, *time.Time, []*Block) {
	t.Helper()
	now := testNow
	c, err := Open(t.TempDir()+"/chain.db", WithClock(func() time.Time { return now }), WithFinality(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	main := build(t, signer(1), Genesis(), 10, "m")
	if _, err := c.Add(main...); err != nil {
		t.Fatal(err)
	}
	return c, &now, main
}

func TestFinalityDepth(t *testing.T) {
	c, now, main := openFinality(t)
	*now = now.Add(DefaultSettle) // the main chain has stood long enough
	// Forking below block 4 would replace 6 blocks: refused, nothing stored.
	deep := build(t, signer(2), main[3], 20, "d")
	if _, err := c.Add(deep...); Code(err) != ErrTooDeep || c.Head().Hash != main[9].Hash || c.Has(deep[0].Hash) {
		t.Fatalf("deep branch: err %v, head %d; want reorg_too_deep and the old head", err, c.Height())
	}
	for _, b := range deep { // one by one, as gossip would bring them
		if _, err := c.Add(b); err != nil && Code(err) != ErrTooDeep && Code(err) != ErrUnknownParent {
			t.Fatalf("deep block %d: %v", b.Index, err)
		}
	}
	if c.Head().Hash != main[9].Hash {
		t.Fatalf("head moved to %d %s", c.Height(), c.Head().Short())
	}
	// Forking at block 5 replaces 5 blocks: allowed.
	shallow := build(t, signer(3), main[4], 6, "s")
	if res, err := c.Add(shallow...); err != nil || !res.Reorg || res.Dropped != 5 || c.Head().Hash != shallow[5].Hash {
		t.Fatalf("shallow branch: err %v, dropped %d, head %d", err, res.Dropped, c.Height())
	}
}

func TestAuthorsList(t *testing.T) {
	allowed, other := signer(1), signer(2)
	c, err := Open(t.TempDir()+"/chain.db", WithClock(func() time.Time { return testNow }), WithAuthors([]string{allowed.ID()}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Add(build(t, allowed, Genesis(), 1, "a")[0]); err != nil {
		t.Fatal(err)
	}
	b := build(t, other, c.Head(), 1, "o")[0]
	if _, err := c.Add(b); Code(err) != ErrUnknownAuthor || !Code(err).Provable() {
		t.Fatalf("unlisted author: %v, want unknown_author (provable)", err)
	}
	if _, err := c.Add(b); Code(err) != ErrUnknownAuthor {
		t.Fatalf("unlisted author in a run: %v", err)
	}
}

func TestGroupCommit(t *testing.T) {
	c, path := openTest(t)
	run := build(t, signer(1), Genesis(), 300, "g")
	var last Result
	for _, b := range run {
		res, err := c.Add(b) // no wait: in memory now, on disk with a later batch
		if err != nil {
			t.Fatal(err)
		}
		last = res
	}
	// Readers see every block at once, on disk or not yet.
	data := assertLinked(t, c, 301)
	if data[300] != run[299].Data {
		t.Fatalf("last block %q", data[300])
	}
	if raw, found, err := c.After([]string{Genesis().Hash}, 1000, 1<<20); err != nil || !found || len(raw) != 300 {
		t.Fatalf("After: %d blocks, %v, %v", len(raw), found, err)
	}
	if err := last.Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Append(signer(2), "typed")
	if err != nil || res.Wait() != nil {
		t.Fatalf("append: %v", err)
	}
	c.Close()
	c2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Height() != 301 {
		t.Fatalf("after reopen: height %d, want 301", c2.Height())
	}
}

// A change nobody waits for still reaches the disk on its own (lazily, in a
// batch), and Wait on a later one does not wait for that batch's timer.
func TestLazyFlushWrites(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 20, "l")
	for _, b := range run {
		if _, err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	// On disk: its body (its index entry may wait in memory: index.go).
	onDisk := func(b *Block) bool {
		found := false
		c.db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(bucketBodies).Get(bodyKey(b.Index, b.Hash)) != nil
			return nil
		})
		return found
	}
	// The flusher forgets a block's in-memory copy once its batch is
	// written: wait for that, then look on disk.
	unsynced := func() int {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return len(c.unsynced)
	}
	deadline := time.Now().Add(10 * time.Second)
	for unsynced() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d received blocks never reached the disk without a waiter", unsynced())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, b := range run {
		if !onDisk(b) {
			t.Fatalf("block %d left memory but is not on disk", b.Index)
		}
	}
	res, err := c.Append(signer(2), "typed")
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Wait(); err != nil || !onDisk(res.Added[0]) {
		t.Fatalf("Wait returned (%v) before the block was on disk", err)
	}
}

// Branches that grew apart for less than the settle time merge however
// deep they are (two consoles pasting lines at once); once the winner has
// stood for it, finality protects it.
func TestFreshBranchesMerge(t *testing.T) {
	c, now, main := openFinality(t)
	*now = now.Add(DefaultSettle / 2)
	other := build(t, signer(2), main[3], 20, "o") // replaces 6 > 5 blocks
	if res, err := c.Add(other...); err != nil || !res.Reorg || res.Dropped != 6 || c.Head().Hash != other[19].Hash {
		t.Fatalf("fresh deep branch: err %v, dropped %d, head %d; want it adopted", err, res.Dropped, c.Height())
	}
	*now = now.Add(DefaultSettle / 2) // main[:4] has stood DefaultSettle, other only half of it
	again := build(t, signer(3), other[1], 30, "a")
	if res, err := c.Add(again...); err != nil || res.Dropped != 18 || c.Head().Hash != again[29].Hash {
		t.Fatalf("branch replacing 18 fresh blocks: err %v, dropped %d; want it adopted", err, res.Dropped)
	}
	*now = now.Add(DefaultSettle)
	late := build(t, signer(4), again[0], 40, "l")
	if _, err := c.Add(late...); Code(err) != ErrTooDeep || c.Head().Hash != again[29].Hash {
		t.Fatalf("branch replacing settled blocks: err %v, head %d; want reorg_too_deep", err, c.Height())
	}
}

// A received block's wait for company stays within lazyFlush (what a crash
// can lose) and varies, so nodes on one machine do not commit in step.
func TestLazyWait(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := lazyWait()
		if d > lazyFlush || d < lazyFlush*3/4 {
			t.Fatalf("wait %v outside [%v, %v]", d, lazyFlush*3/4, lazyFlush)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d different waits in 1,000", len(seen))
	}
}

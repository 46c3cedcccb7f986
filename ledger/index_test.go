package ledger

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// indexState reads how many index entries the store at c holds and its
// mark.
func indexState(t *testing.T, db *bolt.DB) (entries int, mark uint64) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketIndex).Stats().KeyN
		mark = readIndexMark(tx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, mark
}

// Index entries wait in memory and are written indexBatch at a time; a
// crash loses none of them (Open reads them back from the bodies), and
// Close writes them all.
func TestIndexWaitsAndSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "chain.db"))
	if err != nil {
		t.Fatal(err)
	}
	n := indexBatch + 3000
	runs := ingestRuns(Genesis(), n)
	// Open checks the last finality-depth blocks' signatures: sign those.
	s := signer(7)
	tail := runs[len(runs)-1]
	parent := runs[len(runs)-2][999]
	for i, b := range tail {
		if tail[i], err = s.Sign(parent, b.Data, b.Time()); err != nil {
			t.Fatal(err)
		}
		parent = tail[i]
	}
	// One transaction per run, as a steady stream makes them.
	for _, run := range runs {
		res, err := c.Process(&Checked{blocks: run, valid: len(run)})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	entries, mark := indexState(t, c.db)
	if entries < indexBatch || entries > n || mark == 0 || mark >= uint64(n) {
		t.Fatalf("after %d blocks: %d index entries on disk, mark %d; want a batch of at least %d written and the rest waiting", n, entries, mark, indexBatch)
	}
	// A crash now leaves the store as it is on disk.
	crashed := filepath.Join(dir, "crashed.db")
	if err := c.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(crashed, 0o600) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, mark := indexState(t, openRaw(t, filepath.Join(dir, "chain.db"))); entries != n+1 || mark != uint64(n) {
		t.Fatalf("after Close: %d index entries, mark %d; want %d and %d", entries, mark, n+1, n)
	}
	rc, err := Open(crashed)
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	defer rc.Close()
	if rc.Height() != uint64(n) {
		t.Fatalf("after a crash the head is %d, want %d", rc.Height(), n)
	}
	for _, run := range runs {
		if b := run[len(run)-1]; !rc.Has(b.Hash) || !rc.Has(run[0].Hash) {
			t.Fatalf("after a crash block %d is not found by its hash", b.Index)
		}
	}
	// More blocks on the recovered store; Close indexes them all.
	more := ingestRuns(rc.Head(), 10)[0]
	if _, err := rc.Process(&Checked{blocks: more, valid: len(more)}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, mark := indexState(t, openRaw(t, crashed)); entries != n+11 || mark != uint64(n+10) {
		t.Fatalf("after a crash, a restart and Close: %d index entries, mark %d; want %d and %d", entries, mark, n+11, n+10)
	}
}

// openRaw opens a closed store's file for a look, closed with the test.
func openRaw(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A format-2 store (every block indexed, no mark) opens as it is and is
// marked as the current format with every block indexed.
func TestUpgradeFormat2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	c, err := Open(path, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	bs := build(t, signer(1), Genesis(), 30, "f")
	if _, err := c.Add(bs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Delete(keyIndexed); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, heightKey(2))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckStore(path, nil); err != nil {
		t.Fatalf("check of a format-2 store: %v", err)
	}
	c, err = Open(path, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	if c.Head().Hash != bs[29].Hash || !c.Has(bs[0].Hash) || len(c.unindexed) != 0 {
		t.Fatalf("format-2 store opened at %d, %d entries waiting", c.Height(), len(c.unindexed))
	}
	c.Close()
	var format, mark uint64
	openRaw(t, path).View(func(tx *bolt.Tx) error {
		format = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyFormat))
		mark = readIndexMark(tx)
		return nil
	})
	if format != storeFormat || mark != 30 {
		t.Fatalf("upgraded store: format %d, mark %d; want %d and 30", format, mark, storeFormat)
	}
}

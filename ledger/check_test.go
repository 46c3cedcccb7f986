package ledger

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkFixture is a small closed store with every kind of record
// CheckStore reads: main-chain blocks, a side block typed here that lost a
// fork (so a line record and a pending line), genesis and head.
type checkFixture struct {
	path  string
	main  []*Block // heights 1 and 2
	local *Block   // the side block at height 1
}

func newCheckFixture(t *testing.T) checkFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.db")
	c, err := Open(path, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Append(signer(1), "typed here")
	if err != nil || len(res.Added) != 1 {
		t.Fatalf("append: %v %v", res.Added, err)
	}
	main := build(t, signer(2), Genesis(), 2, "m")
	if _, err := c.Add(main...); err != nil || c.Head().Hash != main[1].Hash || c.PendingLines() != 1 {
		t.Fatalf("fork: head %d, %d pending, %v", c.Height(), c.PendingLines(), err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return checkFixture{path, main, res.Added[0]}
}

// Every verdict of CheckStore, word for word: what an operator reads is
// the same whichever way the check is organised.
func TestCheckStoreVerdicts(t *testing.T) {
	fx := newCheckFixture(t) // its hashes are every fixture's: the same keys sign the same blocks
	m := func(i int) string { return fx.main[i].Short() }
	loc := fx.local.Short
	stray := build(t, signer(3), build(t, signer(3), Genesis(), 1, "x")[0], 1, "y")[0] // parent not stored
	cases := []struct {
		name string
		harm func(tx *bolt.Tx, f checkFixture) error
		want string
	}{
		{"healthy", func(*bolt.Tx, checkFixture) error { return nil }, ""},
		{"no meta bucket", func(tx *bolt.Tx, f checkFixture) error {
			return tx.DeleteBucket(bucketMeta)
		}, "corrupt store: missing bucket meta"},
		{"format 1", func(tx *bolt.Tx, f checkFixture) error {
			if _, err := tx.CreateBucket(bucketOldBlocks); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Delete(keyFormat)
		}, "corrupt store: store is in format 1; start the node once to upgrade it"},
		{"no pending bucket", func(tx *bolt.Tx, f checkFixture) error {
			return tx.DeleteBucket(bucketPending)
		}, "corrupt store: missing bucket pending"},
		{"another network", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketMeta).Put(keyGenesis, hashKey(strings.Repeat("ab", 32)))
		}, "corrupt store: store belongs to another network (genesis abababab)"},
		{"main entry missing", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketMain).Delete(heightKey(1))
		}, "corrupt store: height 1: main chain entry missing (next entry is 0000000000000002)"},
		{"main entry short", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketMain).Put(heightKey(1), []byte{1, 2, 3})
		}, "corrupt store: height 1: main chain entry has 3 bytes"},
		{"main block missing", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketBodies).Delete(bodyKey(2, f.main[1].Hash))
		}, "corrupt store: height 2: block " + m(1) + " missing"},
		{"main chain not from genesis", func(tx *bolt.Tx, f checkFixture) error {
			b := &Block{Index: 0, Timestamp: 1, Data: "other", PrevHash: strings.Repeat("00", 32)}
			b.Hash, _ = b.ComputeHash()
			if err := putBlock(tx, b); err != nil {
				return err
			}
			return tx.Bucket(bucketMain).Put(heightKey(0), hashKey(b.Hash))
		}, "corrupt store: height 0: main chain does not start at genesis"},
		{"main chain empty", func(tx *bolt.Tx, f checkFixture) error {
			if err := tx.DeleteBucket(bucketMain); err != nil {
				return err
			}
			_, err := tx.CreateBucket(bucketMain)
			return err
		}, "corrupt store: height 0: main chain is empty"},
		{"main link broken", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketMain).Put(heightKey(1), hashKey(f.local.Hash))
		}, "corrupt store: height 2: block " + m(1) + " does not link to block 1 " + loc()},
		{"head pointer", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketMeta).Put(keyHead, hashKey(f.main[0].Hash))
		}, "corrupt store: height 2: head pointer " + m(0) + " is not the main chain's last block " + m(1)},
		{"main signature", func(tx *bolt.Tx, f checkFixture) error {
			return flipLastByte(tx, bodyKey(2, f.main[1].Hash))
		}, "corrupt store: height 2: block " + m(1) + ": signature does not verify for author " + signer(2).ID()},
		{"block key", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketBodies).Put([]byte{9, 9, 9}, []byte{1})
		}, "corrupt store: block key 090909 has 3 bytes"},
		{"side index entry", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketIndex).Delete(hashKey(f.local.Hash))
		}, "corrupt store: height 1 (side branch): block " + loc() + " has no index entry, or a wrong one"},
		{"side parent", func(tx *bolt.Tx, f checkFixture) error {
			return putBlock(tx, stray)
		}, "corrupt store: height 2 (side branch): block " + stray.Short() + " has no stored parent at height 1"},
		{"side signature", func(tx *bolt.Tx, f checkFixture) error {
			return flipLastByte(tx, bodyKey(1, f.local.Hash))
		}, "corrupt store: height 1: block " + loc() + ": signature does not verify for author " + signer(1).ID()},
		{"index entry extra", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketIndex).Put(hashKey(strings.Repeat("cd", 32)), make([]byte, 40))
		}, "corrupt store: the index has 5 entries for 4 stored blocks"},
		{"line record malformed", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketLines).Put([]byte{7}, make([]byte, 40))
		}, "corrupt store: line record 07 is malformed"},
		{"line record of no block", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketLines).Put(bodyKey(3, strings.Repeat("ef", 32)), make([]byte, 40))
		}, "corrupt store: height 3: line record names no stored block (efefefef)"},
		{"pending malformed", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketPending).Put(hashKey(strings.Repeat("11", 32)), make([]byte, 47))
		}, "corrupt store: pending line record 1111111111111111111111111111111111111111111111111111111111111111 is malformed"},
		{"pending of no block", func(tx *bolt.Tx, f checkFixture) error {
			return tx.Bucket(bucketPending).Put(hashKey(strings.Repeat("22", 32)), append(heightKey(1), bodyKey(4, strings.Repeat("ef", 32))...))
		}, "corrupt store: height 4: pending line 22222222 names no stored block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCheckFixture(t)
			if f.local.Hash != fx.local.Hash || f.main[1].Hash != fx.main[1].Hash {
				t.Fatal("the fixture is not the same store twice")
			}
			db, err := bolt.Open(f.path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tc.harm(tx, f) })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			rep, err := CheckStore(f.path, nil)
			if tc.want == "" {
				want := CheckReport{Height: 2, Head: f.main[1].Hash, Blocks: 4, Lines: 1, Pending: 1}
				if err != nil || rep != want {
					t.Fatalf("healthy store: %+v, %v; want %+v", rep, err, want)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("check: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func flipLastByte(tx *bolt.Tx, key []byte) error {
	v := append([]byte(nil), tx.Bucket(bucketBodies).Get(key)...)
	v[len(v)-1] ^= 0x01
	return tx.Bucket(bucketBodies).Put(key, v)
}

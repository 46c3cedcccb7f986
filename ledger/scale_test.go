package ledger

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeStore writes a chain of n blocks on genesis straight into a new store
// at path, in large transactions, and returns the main chain's blocks by
// height: all of them, or (keep) only those keep says to. Only the last signed blocks carry real signatures (Open
// checks the last finality-depth ones; the rest are never checked here):
// signing 200,000 blocks under the race detector would take minutes.
func writeStore(t testing.TB, path string, n int, signed int, keep func(int) bool) map[int]*Block {
	t.Helper()
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s := signer(7)
	fake := strings.Repeat("00", 64)
	blocks := map[int]*Block{0: Genesis()}
	parent := Genesis()
	start := time.Now().Add(-time.Duration(n+1) * time.Millisecond)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for lo := 1; lo <= n; lo += 20000 {
		hi := min(n, lo+20000-1)
		w := &write{fork: uint64(lo - 1)}
		for i := lo; i <= hi; i++ {
			b := &Block{Index: uint64(i), Timestamp: start.Add(time.Duration(i) * time.Millisecond).UnixMilli(), Data: fmt.Sprintf("line %d", i), PrevHash: parent.Hash, Author: s.ID()}
			if i > n-signed {
				b, err = s.Sign(parent, b.Data, b.Time())
				if err != nil {
					t.Fatal(err)
				}
			} else {
				b.Hash, _ = b.ComputeHash()
				b.Signature = fake
			}
			if keep == nil || keep(i) {
				blocks[i] = b
			}
			parent = b
			w.blocks = append(w.blocks, b)
			w.branch = append(w.branch, b.Hash)
		}
		w.head = parent.Hash
		err := db.Update(func(tx *bolt.Tx) error {
			if _, err := w.apply(tx, nil, nil); err != nil {
				return err
			}
			return markAllIndexed(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return blocks
}

// heapAfterOpen returns how much the live Go heap grew by opening the store
// at path (the chain stays open).
func heapAfterOpen(t *testing.T, path string) (*Chain, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return c, after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
}

// A long chain reopens at once into the same head, serves the same blocks,
// and the memory it takes does not depend on its length.
func TestLongChain(t *testing.T) {
	const heapBound = 4 << 20
	for _, n := range []int{20_000, 200_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chain.db")
			sampled := func(i int) bool {
				return i < 101 || (i >= n/2 && i <= n/2+100) || i >= n-100
			}
			blocks := writeStore(t, path, n, 2*DefaultFinality, sampled)
			c, grew := heapAfterOpen(t, path)
			t.Logf("%d blocks: live heap grew %d KiB on open", n, grew>>10)
			if grew > heapBound {
				t.Errorf("opening %d blocks took %d MiB of heap, bound %d MiB", n, grew>>20, heapBound>>20)
			}
			if c.Head().Hash != blocks[n].Hash {
				t.Fatalf("head %d %s, want %d", c.Height(), c.Head().Short(), n)
			}
			for _, from := range []int{0, 1, n / 2, n - 100} {
				got, err := c.Range(uint64(from), 100)
				if err != nil || len(got) != min(100, n+1-from) {
					t.Fatalf("Range(%d): %d blocks, %v", from, len(got), err)
				}
				for i, b := range got {
					if *b != *blocks[from+i] {
						t.Fatalf("block %d differs after reopen", from+i)
					}
				}
			}
			// A peer at the middle of the chain gets what follows, as stored.
			raw, found, err := c.After([]string{strings.Repeat("ab", 32), blocks[n/2].Hash}, 500, 1<<20)
			if err != nil || !found || len(raw) != 500 {
				t.Fatalf("After(middle): %d blocks, found %v, %v", len(raw), found, err)
			}
			var first Block
			if err := json.Unmarshal(raw[0], &first); err != nil || first != *blocks[n/2+1] {
				t.Fatalf("After(middle) starts with %+v (%v)", first, err)
			}
			if loc := c.Locator(); loc[0] != blocks[n].Hash || loc[len(loc)-1] != Genesis().Hash || len(loc) > MaxLocator {
				t.Fatalf("locator %d hashes from %s", len(loc), short(loc[0]))
			}
			// It grows, and forks near the head, as before.
			res, err := c.Append(signer(8), "after reopen")
			if err != nil || res.Wait() != nil || c.Height() != uint64(n+1) {
				t.Fatalf("append: %v, height %d", err, c.Height())
			}
			fork := build(t, signer(9), blocks[n-3], 6, "f")
			if res, err := c.Add(fork...); err != nil || !res.Reorg || res.Dropped != 4 || c.Head().Hash != fork[5].Hash {
				t.Fatalf("fork near the head: %v, reorg %v dropped %d", err, res.Reorg, res.Dropped)
			}
			if c.PendingLines() != 1 {
				t.Fatalf("%d lines pending after the reorg, want the appended one", c.PendingLines())
			}
		})
	}
}

// The tail of main-chain hashes in memory stays bounded while a chain
// grows past it, and reads below it come from the store.
func TestTailBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	blocks := writeStore(t, path, 2*tailKeep, 2*DefaultFinality, nil)
	// build spaces blocks a second apart: a clock a day ahead admits them.
	c, err := Open(path, WithClock(func() time.Time { return time.Now().Add(24 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := build(t, signer(3), blocks[2*tailKeep], tailKeep+10, "t")
	for lo := 0; lo < len(run); lo += 1000 {
		if _, err := c.Add(run[lo:min(len(run), lo+1000)]...); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.RLock()
	tail, base := len(c.tail), c.tailBase
	c.mu.RUnlock()
	if tail > 2*tailKeep || base == 0 {
		t.Fatalf("%d hashes in the tail from height %d, bound %d", tail, base, 2*tailKeep)
	}
	for _, from := range []uint64{1, base - 5, base + 5} {
		got, err := c.Range(from, 10)
		if err != nil || len(got) != 10 {
			t.Fatalf("Range(%d): %d blocks, %v", from, len(got), err)
		}
		want := blocks[int(from)]
		if from > 2*tailKeep {
			want = run[from-2*tailKeep-1]
		}
		if *got[0] != *want {
			t.Fatalf("Range(%d) starts with block %d %s", from, got[0].Index, got[0].Short())
		}
	}
}

func TestCheckStore(t *testing.T) {
	const n = 300
	fresh := func(t *testing.T) (string, map[int]*Block) {
		path := filepath.Join(t.TempDir(), "chain.db")
		blocks := writeStore(t, path, n, n, nil)
		return path, blocks
	}
	path, blocks := fresh(t)
	var reports int
	rep, err := CheckStore(path, func(CheckProgress) { reports++ })
	if err != nil || rep.Height != n || rep.Blocks != n+1 || reports == 0 {
		t.Fatalf("healthy store: %+v, %v, %d progress reports", rep, err, reports)
	}
	damage := []struct {
		name   string
		height int
		harm   func(tx *bolt.Tx, bs map[int]*Block) error
	}{
		{"flipped byte in a block", 120, func(tx *bolt.Tx, bs map[int]*Block) error {
			k := bodyKey(120, bs[120].Hash)
			v := append([]byte(nil), tx.Bucket(bucketBodies).Get(k)...)
			v[20] ^= 0x01 // inside the data
			return tx.Bucket(bucketBodies).Put(k, v)
		}},
		{"bad signature", 77, func(tx *bolt.Tx, bs map[int]*Block) error {
			k := bodyKey(77, bs[77].Hash)
			v := append([]byte(nil), tx.Bucket(bucketBodies).Get(k)...)
			v[len(v)-1] ^= 0x01
			return tx.Bucket(bucketBodies).Put(k, v)
		}},
		{"missing index entry", 200, func(tx *bolt.Tx, bs map[int]*Block) error {
			return tx.Bucket(bucketIndex).Delete(hashKey(bs[200].Hash))
		}},
		{"missing main-chain entry", 150, func(tx *bolt.Tx, bs map[int]*Block) error {
			return tx.Bucket(bucketMain).Delete(heightKey(150))
		}},
		{"head pointer to nowhere", n, func(tx *bolt.Tx, bs map[int]*Block) error {
			return tx.Bucket(bucketMeta).Put(keyHead, hashKey(strings.Repeat("cd", 32)))
		}},
		{"broken link", 61, func(tx *bolt.Tx, bs map[int]*Block) error {
			// A validly signed block at height 61 whose parent is not block 60.
			other := build(t, signer(5), bs[59], 2, "x")[1]
			if err := putBlock(tx, other); err != nil {
				return err
			}
			return tx.Bucket(bucketMain).Put(heightKey(61), hashKey(other.Hash))
		}},
		{"truncated block", 10, func(tx *bolt.Tx, bs map[int]*Block) error {
			return tx.Bucket(bucketBodies).Put(bodyKey(10, bs[10].Hash), []byte{1, 2, 3})
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			path, blocks := fresh(t)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return d.harm(tx, blocks) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = CheckStore(path, nil)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("height %d", d.height)) {
				t.Fatalf("check: %v; want corrupt store naming height %d", err, d.height)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("check error is more than one line: %q", err)
			}
		})
	}
	// A node holding the store: in use, not corrupt.
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := CheckStore(path, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("check of a store in use: %v", err)
	}
	_ = blocks
}

// A store written by the previous format (block JSON by hash, line records
// by hash) opens into the same chain, its pending lines intact.
func TestUpgradeFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	s := signer(1)
	main := build(t, s, Genesis(), 5, "m")
	side := build(t, s, main[1], 1, "s") // a line typed here that lost a fork
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		blocks, _ := tx.CreateBucket(bucketOldBlocks)
		mainB, _ := tx.CreateBucket(bucketMain)
		meta, _ := tx.CreateBucket(bucketMeta)
		lines, _ := tx.CreateBucket(bucketLines)
		for i, b := range append([]*Block{Genesis()}, append(main, side...)...) {
			v, _ := json.Marshal(b)
			blocks.Put(hashKey(b.Hash), v)
			if i <= len(main) {
				mainB.Put(heightKey(uint64(i)), hashKey(b.Hash))
			}
		}
		meta.Put(keyGenesis, hashKey(Genesis().Hash))
		meta.Put(keyHead, hashKey(main[4].Hash))
		for i, b := range []*Block{main[0], side[0]} {
			lines.Put(hashKey(b.Hash), append(hashKey(b.Hash), heightKey(uint64(i+1))...))
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Range(0, 10)
	if err != nil || len(got) != 6 || *got[5] != *main[4] || c.Head().Hash != main[4].Hash {
		t.Fatalf("upgraded: %d blocks, head %d, %v", len(got), c.Height(), err)
	}
	if !c.Has(side[0].Hash) || c.PendingLines() != 1 {
		t.Fatalf("upgraded: side block kept %v, %d pending lines (want 1)", c.Has(side[0].Hash), c.PendingLines())
	}
	res, err := c.Reappend(s, 10)
	if err != nil || len(res.Added) != 1 || res.Added[0].Data != side[0].Data {
		t.Fatalf("reappend after upgrade: %v %v", res.Added, err)
	}
	if h := hex.EncodeToString(hashKey(res.Added[0].PrevHash)); h != main[4].Hash {
		t.Fatalf("re-appended on %s", short(h))
	}
}

// A format-1 store the upgrade cannot read is refused, naming the record,
// and left as it was.
func TestUpgradeFormat1Refused(t *testing.T) {
	b := build(t, signer(1), Genesis(), 1, "m")[0]
	good, _ := json.Marshal(b)
	forged := *b
	forged.Data = "forged"
	bad, _ := json.Marshal(&forged)
	cases := []struct {
		name   string
		blocks map[string][]byte // hash -> JSON
		lines  map[string][]byte // key -> value
		want   string
	}{
		{"not JSON", map[string][]byte{b.Hash: []byte("{")}, nil,
			"corrupt store: block " + b.Hash + ": unexpected end of JSON input"},
		{"wrong hash", map[string][]byte{b.Hash: bad}, nil,
			"corrupt store: block " + b.Hash + " does not match its hash"},
		{"line record malformed", map[string][]byte{b.Hash: good}, map[string][]byte{"k": make([]byte, 40)},
			"corrupt store: line record 6b"},
		{"line record of no block", map[string][]byte{b.Hash: good}, map[string][]byte{string(hashKey(strings.Repeat("ab", 32))): make([]byte, 40)},
			"corrupt store: line record names missing block " + strings.Repeat("ab", 32)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "chain.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx *bolt.Tx) error {
				blocks, _ := tx.CreateBucket(bucketOldBlocks)
				lines, _ := tx.CreateBucket(bucketLines)
				tx.CreateBucket(bucketMain)
				tx.CreateBucket(bucketMeta)
				for h, v := range tc.blocks {
					blocks.Put(hashKey(h), v)
				}
				for k, v := range tc.lines {
					lines.Put([]byte(k), v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(upgrade)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("upgrade: %v\nwant: %s", err, tc.want)
			}
			db.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketOldBlocks) == nil || tx.Bucket(bucketBodies) != nil {
					t.Error("a refused upgrade changed the store")
				}
				return nil
			})
		})
	}
}

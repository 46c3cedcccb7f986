package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The deferred index. The index bucket is keyed by block hash, so its keys
// are random: every block written to it lands on a different leaf page of
// a B+tree that grows with the chain, and each commit rewrites about one
// 4 KiB page per block. At 200,000 blocks its puts and their pages were
// two thirds of what storing a synced block cost (BenchmarkIngest), and
// the share grows with the chain.
//
// So index entries of new blocks wait in memory (Chain.unindexed) and are
// written indexBatch at a time, sorted, in the flusher's transaction: a
// batch that large shares leaf pages instead of rewriting one per block.
// Nothing is lost in a crash: the store's mark (meta "indexed") is a
// height above which a block's entry may be missing, and every block is
// written with its body, which holds its height and parent; Open reads
// the bodies above the mark (keyed by height: one cursor walk over at
// most about indexBatch blocks) back into memory. A block at or below the
// mark (a side branch arriving late) is indexed at once, so the mark
// stays true. Close writes every waiting entry.

// indexBatch is how many waiting index entries make the flusher write
// them. Each costs about 90 bytes of memory while it waits.
const indexBatch = 1 << 16

// indexEntry is one block's index entry in memory: what the index bucket
// holds under its hash.
type indexEntry struct {
	height uint64
	parent [32]byte
}

// unindexed holds the index entries not written to the index bucket yet,
// by hash. It changes only in the flusher (Chain.flushed, under Chain.mu
// held for writing), so the flusher reads it without the lock.
type unindexed map[[32]byte]indexEntry

// get returns the waiting entry of hash (hex), if there is one.
func (u unindexed) get(hash string) (meta, bool) {
	var k [32]byte
	if len(u) == 0 || len(hash) != 64 {
		return meta{}, false
	}
	if _, err := hex.Decode(k[:], []byte(hash)); err != nil {
		return meta{}, false
	}
	e, ok := u[k]
	if !ok {
		return meta{}, false
	}
	return meta{height: e.height, parent: hex.EncodeToString(e.parent[:])}, true
}

// add records b's entry.
func (u unindexed) add(b *Block) {
	k, e := entryOf(b)
	u[k] = e
}

// entryOf returns b's index key (its hash) and entry.
func entryOf(b *Block) (k [32]byte, e indexEntry) {
	// Stored blocks' hashes are well-formed: Check saw to it.
	hex.Decode(k[:], []byte(b.Hash))
	hex.Decode(e.parent[:], []byte(b.PrevHash))
	e.height = b.Index
	return k, e
}

// indexMark is the flusher's view of the store's mark: blocks above to
// may lack an index entry (their entries wait in Chain.unindexed), and
// top is the highest block written. Only the flusher uses it.
type indexMark struct{ to, top uint64 }

// readIndexMark returns the store's mark; a store without one (format 2)
// indexed every block it holds.
func readIndexMark(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyIndexed); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return math.MaxUint64
}

// markAllIndexed sets the store's mark at its highest block: every block
// it holds is indexed (an upgraded store).
func markAllIndexed(tx *bolt.Tx) error {
	top := uint64(0)
	if k, _ := tx.Bucket(bucketBodies).Cursor().Last(); len(k) >= 8 {
		top = binary.BigEndian.Uint64(k)
	}
	return tx.Bucket(bucketMeta).Put(keyIndexed, heightKey(top))
}

// loadUnindexed reads the entries of the blocks above the store's mark
// from their bodies (a crash left them unwritten) into c.unindexed, and
// returns the mark.
func (c *Chain) loadUnindexed(tx *bolt.Tx) (uint64, error) {
	mark := readIndexMark(tx)
	if mark == math.MaxUint64 {
		return c.top, nil
	}
	cur := tx.Bucket(bucketBodies).Cursor()
	for k, v := cur.Seek(heightKey(mark + 1)); k != nil; k, v = cur.Next() {
		if len(k) != 40 {
			return 0, fmt.Errorf("%w: block key %x has %d bytes", ErrCorrupt, k, len(k))
		}
		b, err := decodeBody(hex.EncodeToString(k[8:]), v)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		c.unindexed.add(b)
	}
	return mark, nil
}

// writeIndex writes the waiting entries, with those of deferred (blocks
// this transaction wrote above the mark), sorted, once there are
// indexBatch of them or all is to be written (Close), and moves the mark
// to top. It reports whether it wrote them.
func (c *Chain) writeIndex(tx *bolt.Tx, deferred []*Block, top uint64, all bool) (bool, error) {
	n := len(c.unindexed) + len(deferred)
	if n == 0 || (n < indexBatch && !all) {
		return false, nil
	}
	type kv struct {
		k [32]byte
		e indexEntry
	}
	entries := make([]kv, 0, n)
	for k, e := range c.unindexed {
		entries = append(entries, kv{k, e})
	}
	for _, b := range deferred {
		k, e := entryOf(b)
		entries = append(entries, kv{k, e})
	}
	slices.SortFunc(entries, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
	ib := tx.Bucket(bucketIndex)
	for _, x := range entries {
		if err := ib.Put(x.k[:], append(heightKey(x.e.height), x.e.parent[:]...)); err != nil {
			return false, err
		}
	}
	return true, tx.Bucket(bucketMeta).Put(keyIndexed, heightKey(top))
}

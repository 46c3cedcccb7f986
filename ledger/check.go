package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// CheckProgress is reported while CheckStore runs: what it is doing and how
// far it got (Total is 0 while unknown).
type CheckProgress struct {
	Stage       string // "main chain", "side blocks", "lines"
	Done, Total uint64
}

// CheckReport sums up a store that passed CheckStore.
type CheckReport struct {
	Height  uint64 // the head's index
	Head    string // the head's hash
	Blocks  uint64 // every stored block, side branches included
	Lines   uint64 // blocks carrying a line typed on this node
	Pending uint64 // lines waiting to be appended again
}

// CheckBatch is how many blocks CheckStore verifies at a time, spread over
// the CPUs; progress is reported once per batch.
const CheckBatch = 2048

// CheckStore verifies the store at path offline, all of it: every block's
// hash, signature, index and link, every index entry, every main-chain
// entry and the head pointer, every line record. It opens the store read
// only (ErrInUse if a node holds it) and returns the first problem found,
// naming the height and what is wrong, wrapped in ErrCorrupt.
func CheckStore(path string, progress func(CheckProgress)) (rep CheckReport, err error) {
	db, err := openDB(path, true)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	if progress == nil {
		progress = func(CheckProgress) {}
	}
	err = db.View(func(tx *bolt.Tx) error { return checkTx(tx, &rep, progress) })
	return rep, err
}

// checkTx runs CheckStore's stages in order inside one read transaction;
// each stage trusts what the ones before it checked.
func checkTx(tx *bolt.Tx, rep *CheckReport, progress func(CheckProgress)) error {
	if err := checkLayout(tx); err != nil {
		return err
	}
	c := &storeCheck{
		tx: tx, rep: rep, progress: progress,
		bodies: tx.Bucket(bucketBodies), index: tx.Bucket(bucketIndex), main: tx.Bucket(bucketMain),
		sigs: checkQueue{keys: newKeyCache()}, mark: readIndexMark(tx),
	}
	for _, stage := range []func() error{c.mainChain, c.storedBlocks, c.indexCount, c.lineRecords, c.pendingLines} {
		if err := stage(); err != nil {
			return err
		}
	}
	return nil
}

// corrupt is a CheckStore verdict: ErrCorrupt and what is wrong.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkLayout checks that the store is one this version reads, of this
// network: the current format, every bucket, the genesis block's hash.
func checkLayout(tx *bolt.Tx) error {
	mb := tx.Bucket(bucketMeta)
	if mb == nil {
		return corrupt("missing bucket meta")
	}
	if v := mb.Get(keyFormat); v == nil && tx.Bucket(bucketOldBlocks) != nil {
		return corrupt("store is in format 1; start the node once to upgrade it")
	}
	for _, name := range [][]byte{bucketBodies, bucketIndex, bucketMain, bucketLines, bucketPending} {
		if tx.Bucket(name) == nil {
			return corrupt("missing bucket %s", name)
		}
	}
	if gh := hex.EncodeToString(mb.Get(keyGenesis)); gh != Genesis().Hash {
		return corrupt("store belongs to another network (genesis %s)", short(gh))
	}
	return nil
}

// storeCheck is one CheckStore run over a store whose layout is sound.
type storeCheck struct {
	tx  *bolt.Tx
	rep *CheckReport
	// mark: blocks above it may have no index entry yet (index.go);
	// waiting counts those that have none.
	mark, waiting       uint64
	progress            func(CheckProgress)
	bodies, index, main *bolt.Bucket
	// sigs is shared by the main chain and the side blocks, so its key
	// cache decodes each author once.
	sigs checkQueue
}

// mainChain walks the main chain in order: each entry present, its block
// whole, indexed, at its height and linked to the one below, signatures
// in batches over the CPUs; then the head pointer names its last block.
func (c *storeCheck) mainChain() error {
	total := uint64(c.main.Stats().KeyN)
	var prev *Block
	cur := c.main.Cursor()
	h := uint64(0)
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		b, err := c.mainEntry(h, k, v, prev)
		if err != nil {
			return err
		}
		if h > 0 && c.sigs.add(b) {
			if err := c.sigs.verify(); err != nil {
				return err
			}
			c.progress(CheckProgress{"main chain", h + 1, total})
		}
		prev = b
		h++
	}
	if err := c.sigs.verify(); err != nil {
		return err
	}
	if prev == nil {
		return corrupt("height 0: main chain is empty")
	}
	c.progress(CheckProgress{"main chain", h, total})
	if head := hex.EncodeToString(c.tx.Bucket(bucketMeta).Get(keyHead)); head != prev.Hash {
		return corrupt("height %d: head pointer %s is not the main chain's last block %s", prev.Index, short(head), prev.Short())
	}
	c.rep.Height, c.rep.Head = prev.Index, prev.Hash
	return nil
}

// mainEntry checks the main-chain entry k -> v expected at height h, whose
// parent is prev (nil at height 0), and returns its block.
func (c *storeCheck) mainEntry(h uint64, k, v []byte, prev *Block) (*Block, error) {
	if !bytes.Equal(k, heightKey(h)) {
		return nil, corrupt("height %d: main chain entry missing (next entry is %x)", h, k)
	}
	if len(v) != 32 {
		return nil, corrupt("height %d: main chain entry has %d bytes", h, len(v))
	}
	b, err := checkBody(c.bodies, c.index, h, hex.EncodeToString(v), h > c.mark)
	if err != nil {
		return nil, corrupt("height %d: %v", h, err)
	}
	switch {
	case h == 0 && b.Hash != Genesis().Hash:
		return nil, corrupt("height 0: main chain does not start at genesis")
	case h > 0 && b.PrevHash != prev.Hash:
		return nil, corrupt("height %d: block %s does not link to block %d %s", h, b.Short(), h-1, prev.Short())
	}
	return b, nil
}

// storedBlocks checks every stored block off the main chain: indexed where
// it is, whole, its parent stored, its signature good. It counts every
// stored block, the main chain's too.
func (c *storeCheck) storedBlocks() error {
	n := uint64(0)
	err := c.bodies.ForEach(func(k, _ []byte) error {
		c.rep.Blocks++
		if len(k) == 40 && binary.BigEndian.Uint64(k) > c.mark && c.index.Get(k[8:]) == nil {
			c.waiting++
		}
		b, err := c.sideBlock(k)
		if err != nil || b == nil {
			return err
		}
		if c.sigs.add(b) {
			if err := c.sigs.verify(); err != nil {
				return err
			}
		}
		if n++; n%CheckBatch == 0 {
			c.progress(CheckProgress{"side blocks", n, 0})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.sigs.verify()
}

// sideBlock checks the stored block under key k, unless the main-chain
// walk did already (then it returns nil and no error).
func (c *storeCheck) sideBlock(k []byte) (*Block, error) {
	if len(k) != 40 {
		return nil, corrupt("block key %x has %d bytes", k, len(k))
	}
	height, hash := binary.BigEndian.Uint64(k), hex.EncodeToString(k[8:])
	if height <= c.rep.Height && bytes.Equal(c.main.Get(k[:8]), k[8:]) {
		return nil, nil
	}
	b, err := checkBody(c.bodies, c.index, height, hash, height > c.mark)
	if err != nil {
		return nil, corrupt("height %d (side branch): %v", height, err)
	}
	if height == 0 || c.bodies.Get(bodyKey(height-1, b.PrevHash)) == nil {
		return nil, corrupt("height %d (side branch): block %s has no stored parent at height %d", height, b.Short(), height-1)
	}
	return b, nil
}

// indexCount checks that the index names no block beyond the stored ones
// (each stored block's own entry was checked with the block, and those
// still waiting to be written are counted).
func (c *storeCheck) indexCount() error {
	if in := uint64(c.index.Stats().KeyN); in != c.rep.Blocks-c.waiting {
		return corrupt("the index has %d entries for %d stored blocks", in, c.rep.Blocks)
	}
	return nil
}

// lineRecords checks that every line record names a stored block.
func (c *storeCheck) lineRecords() error {
	c.progress(CheckProgress{"lines", 0, 0})
	return c.tx.Bucket(bucketLines).ForEach(func(k, v []byte) error {
		c.rep.Lines++
		if len(k) != 40 || len(v) != 40 {
			return corrupt("line record %x is malformed", k)
		}
		if c.bodies.Get(k) == nil {
			return corrupt("height %d: line record names no stored block (%s)", binary.BigEndian.Uint64(k), short(hex.EncodeToString(k[8:])))
		}
		return nil
	})
}

// pendingLines checks that every pending line names only stored blocks.
func (c *storeCheck) pendingLines() error {
	return c.tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
		c.rep.Pending++
		if len(k) != 32 || len(v) < 48 || (len(v)-8)%40 != 0 {
			return corrupt("pending line record %x is malformed", k)
		}
		for rest := v[8:]; len(rest) > 0; rest = rest[40:] {
			if c.bodies.Get(rest[:40]) == nil {
				return corrupt("height %d: pending line %s names no stored block", binary.BigEndian.Uint64(rest), short(hex.EncodeToString(k)))
			}
		}
		return nil
	})
}

// checkQueue gathers blocks whose signatures are checked together, CheckBatch
// at a time, spread over the CPUs.
type checkQueue struct {
	blocks []*Block
	keys   *keyCache
}

// add queues b and reports whether the batch is full.
func (q *checkQueue) add(b *Block) bool {
	q.blocks = append(q.blocks, b)
	return len(q.blocks) == CheckBatch
}

// verify checks the queued blocks and empties the batch.
func (q *checkQueue) verify() error {
	if err := verifyAll(q.blocks, q.keys); err != nil {
		return err
	}
	q.blocks = q.blocks[:0]
	return nil
}

// checkBody reads the block hash at height and checks that it is whole, has
// that hash and index, and is indexed there: if its entry may wait (above
// the store's index mark, index.go), only if it has one.
func checkBody(bodies, index *bolt.Bucket, height uint64, hash string, mayWait bool) (*Block, error) {
	v := bodies.Get(bodyKey(height, hash))
	if v == nil {
		return nil, fmt.Errorf("block %s missing", short(hash))
	}
	b, err := decodeBody(hash, v)
	if err != nil {
		return nil, err
	}
	if b.Index != height {
		return nil, fmt.Errorf("block %s has index %d", short(hash), b.Index)
	}
	if got, err := b.ComputeHash(); err != nil || got != hash {
		return nil, fmt.Errorf("block %s does not match its hash", short(hash))
	}
	iv := index.Get(hashKey(hash))
	if iv == nil && mayWait {
		return b, nil
	}
	if len(iv) != 40 || binary.BigEndian.Uint64(iv) != height || hex.EncodeToString(iv[8:]) != b.PrevHash {
		return nil, fmt.Errorf("block %s has no index entry, or a wrong one", short(hash))
	}
	return b, nil
}

// verifyAll checks the blocks' own validity (signatures in batches, over
// the CPUs) and names the first that fails.
func verifyAll(bs []*Block, keys *keyCache) error {
	for i, err := range checkRun(bs, keys, nil, nil) {
		if err != nil {
			return fmt.Errorf("%w: height %d: block %s: %v", ErrCorrupt, bs[i].Index, bs[i].Short(), err)
		}
	}
	return nil
}

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

func checkTx(tx *bolt.Tx, rep *CheckReport, progress func(CheckProgress)) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
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
	bodies, index := tx.Bucket(bucketBodies), tx.Bucket(bucketIndex)
	total := uint64(tx.Bucket(bucketMain).Stats().KeyN)

	// The main chain, in order: each entry present, its block whole,
	// indexed, at its height and linked to the one below; signatures in
	// batches over the CPUs.
	keys := newKeyCache()
	var batch []*Block
	verify := func() error {
		if err := verifyAll(batch, keys); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	var prev *Block
	cur := tx.Bucket(bucketMain).Cursor()
	h := uint64(0)
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if !bytes.Equal(k, heightKey(h)) {
			return corrupt("height %d: main chain entry missing (next entry is %x)", h, k)
		}
		if len(v) != 32 {
			return corrupt("height %d: main chain entry has %d bytes", h, len(v))
		}
		hash := hex.EncodeToString(v)
		b, err := checkBody(bodies, index, h, hash)
		if err != nil {
			return corrupt("height %d: %v", h, err)
		}
		switch {
		case h == 0 && b.Hash != Genesis().Hash:
			return corrupt("height 0: main chain does not start at genesis")
		case h > 0 && b.PrevHash != prev.Hash:
			return corrupt("height %d: block %s does not link to block %d %s", h, b.Short(), h-1, prev.Short())
		}
		if h > 0 {
			batch = append(batch, b)
		}
		if len(batch) == CheckBatch {
			if err := verify(); err != nil {
				return err
			}
			progress(CheckProgress{"main chain", h + 1, total})
		}
		prev = b
		h++
	}
	if err := verify(); err != nil {
		return err
	}
	if prev == nil {
		return corrupt("height 0: main chain is empty")
	}
	progress(CheckProgress{"main chain", h, total})
	if head := hex.EncodeToString(mb.Get(keyHead)); head != prev.Hash {
		return corrupt("height %d: head pointer %s is not the main chain's last block %s", prev.Index, short(head), prev.Short())
	}
	rep.Height, rep.Head = prev.Index, prev.Hash

	// Every stored block: indexed where it is, whole, its parent stored.
	var side []*Block
	n := uint64(0)
	err := bodies.ForEach(func(k, v []byte) error {
		rep.Blocks++
		if len(k) != 40 {
			return corrupt("block key %x has %d bytes", k, len(k))
		}
		height, hash := binary.BigEndian.Uint64(k), hex.EncodeToString(k[8:])
		if height <= rep.Height && bytes.Equal(tx.Bucket(bucketMain).Get(k[:8]), k[8:]) {
			return nil // checked above
		}
		b, err := checkBody(bodies, index, height, hash)
		if err != nil {
			return corrupt("height %d (side branch): %v", height, err)
		}
		if m, ok, err := getMeta(tx, b.PrevHash); err != nil || !ok || m.height+1 != height {
			return corrupt("height %d (side branch): block %s has no stored parent at height %d", height, b.Short(), height-1)
		}
		if side = append(side, b); len(side) == CheckBatch {
			if err := verifyAll(side, keys); err != nil {
				return err
			}
			side = side[:0]
		}
		if n++; n%CheckBatch == 0 {
			progress(CheckProgress{"side blocks", n, 0})
		}
		return nil
	})
	if err == nil {
		err = verifyAll(side, keys)
	}
	if err != nil {
		return err
	}
	if in := uint64(index.Stats().KeyN); in != rep.Blocks {
		return corrupt("the index has %d entries for %d stored blocks", in, rep.Blocks)
	}

	// Line records name stored blocks.
	progress(CheckProgress{"lines", 0, 0})
	err = tx.Bucket(bucketLines).ForEach(func(k, v []byte) error {
		rep.Lines++
		if len(k) != 40 || len(v) != 40 {
			return corrupt("line record %x is malformed", k)
		}
		if bodies.Get(k) == nil {
			return corrupt("height %d: line record names no stored block (%s)", binary.BigEndian.Uint64(k), short(hex.EncodeToString(k[8:])))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
		rep.Pending++
		if len(k) != 32 || len(v) < 48 || (len(v)-8)%40 != 0 {
			return corrupt("pending line record %x is malformed", k)
		}
		for rest := v[8:]; len(rest) > 0; rest = rest[40:] {
			if bodies.Get(rest[:40]) == nil {
				return corrupt("height %d: pending line %s names no stored block", binary.BigEndian.Uint64(rest), short(hex.EncodeToString(k)))
			}
		}
		return nil
	})
}

// checkBody reads the block hash at height and checks that it is whole, has
// that hash and index, and is indexed there.
func checkBody(bodies, index *bolt.Bucket, height uint64, hash string) (*Block, error) {
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

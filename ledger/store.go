package ledger

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store is one bbolt file. Buckets are created once, at open:
//
//	blocks  32-byte hash        -> block JSON (every block with a known parent)
//	main    8-byte big-endian height -> 32-byte hash (the main chain, in order)
//	meta    "head", "genesis"   -> 32-byte hash
//
// A block, the main-chain entries it changes and the head pointer are always
// written in one transaction, so a crash leaves the old chain or the new one.
var (
	bucketBlocks = []byte("blocks")
	bucketMain   = []byte("main")
	bucketMeta   = []byte("meta")
	keyHead      = []byte("head")
	keyGenesis   = []byte("genesis")
)

// ErrInUse is returned by Open when another process holds the store.
var ErrInUse = errors.New("data dir is in use by another process")

// ErrClosed is returned by every change, and every read that needs the
// store, after Chain.Close.
var ErrClosed = errors.New("chain is closed")

// ErrCorrupt wraps every reason Open refuses a store's contents.
var ErrCorrupt = errors.New("corrupt store")

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, ErrInUse
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return db, nil
}

func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

func hashKey(h string) []byte {
	k, _ := hex.DecodeString(h)
	return k
}

func putBlock(tx *bolt.Tx, b *Block) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketBlocks).Put(hashKey(b.Hash), v)
}

func getBlock(tx *bolt.Tx, hash string) (*Block, error) {
	v := tx.Bucket(bucketBlocks).Get(hashKey(hash))
	if v == nil {
		return nil, fmt.Errorf("%w: block %s missing", ErrCorrupt, short(hash))
	}
	var b Block
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("%w: block %s: %v", ErrCorrupt, short(hash), err)
	}
	return &b, nil
}

// view runs fn in a read transaction, or returns ErrClosed once the chain
// is closed (also if Close wins the race with the caller's last check).
func (c *Chain) view(fn func(*bolt.Tx) error) error {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := c.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

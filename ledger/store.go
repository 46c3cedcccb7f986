package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store is one bbolt file. Buckets are created once, at open; every key
// is binary, and the buckets written in chain order are keyed by big-endian
// height so that a batch appends to the end of their B+tree:
//
//	bodies  8-byte height + 32-byte hash -> block body (every block with a
//	                                        known parent, side branches too)
//	index   32-byte hash                 -> 8-byte height + 32-byte parent hash
//	main    8-byte height                -> 32-byte hash (the main chain)
//	lines   8-byte height + 32-byte hash -> 32-byte line ID + 8-byte sequence
//	                                        (blocks carrying a line typed here)
//	pending 32-byte line ID              -> 8-byte sequence + the 40-byte
//	                                        bodies keys of the line's blocks
//	meta    "head", "genesis"            -> 32-byte hash
//	        "format"                     -> 8-byte format version
//	        "seq"                        -> 8-byte last line sequence
//	        "indexed"                    -> 8-byte height: blocks above it
//	                                        may have no index entry yet
//	                                        (index.go; none: all have)
//
// A body is the block's canonical encoding (Block.Encode) without its
// domain prefix, followed by the 64-byte signature (none for genesis); the
// hash is in the key. A block, the main-chain entries it changes, its line
// records and the head pointer are always written in one transaction, so a
// crash leaves the old chain or the new one.
var (
	bucketBodies  = []byte("bodies")
	bucketIndex   = []byte("index")
	bucketMain    = []byte("main")
	bucketLines   = []byte("lines")
	bucketPending = []byte("pending")
	bucketMeta    = []byte("meta")
	keyHead       = []byte("head")
	keyGenesis    = []byte("genesis")
	keyFormat     = []byte("format")
	keySeq        = []byte("seq")
	keyIndexed    = []byte("indexed")

	// bucketOldBlocks is format 1's hash -> block JSON; Open upgrades it.
	bucketOldBlocks = []byte("blocks")
)

// storeFormat is the layout above; format 1 kept block JSON by hash and
// rebuilt the whole index in memory at every open; format 2 indexed every
// block as it was written (no "indexed" mark). A format-2 store opens as
// is (every block indexed) and is marked format 3, which an older
// gossipchain refuses: it would not know that entries may wait.
const storeFormat = 3

// ErrInUse is returned by Open when another process holds the store.
var ErrInUse = errors.New("data dir is in use by another process")

// ErrClosed is returned by every change, and every read that needs the
// store, after Chain.Close.
var ErrClosed = errors.New("chain is closed")

// ErrCorrupt wraps every reason Open refuses a store's contents.
var ErrCorrupt = errors.New("corrupt store")

func openDB(path string, readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  time.Second,
		ReadOnly: readOnly,
		// The map freelist keeps a large file's commits cheap.
		FreelistType: bolt.FreelistMapType,
	})
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

// bodyKey is the bodies (and lines) key of the block hash at height.
func bodyKey(height uint64, hash string) []byte {
	return append(heightKey(height), hashKey(hash)...)
}

// meta is what the index says of one block.
type meta struct {
	height uint64
	parent string
}

func encodeBody(b *Block) ([]byte, error) {
	enc, err := b.Encode()
	if err != nil {
		return nil, err
	}
	body := enc[len(hashDomain):]
	if b.Signature != "" {
		sig, err := hex.DecodeString(b.Signature)
		if err != nil {
			return nil, err
		}
		body = append(body, sig...)
	}
	return body, nil
}

// decodeBody rebuilds the block whose hash is hash from its body. It checks
// the shape, not the hash or signature.
func decodeBody(hash string, v []byte) (*Block, error) {
	fail := func(what string) (*Block, error) {
		return nil, fmt.Errorf("block %s: body %s", short(hash), what)
	}
	if len(v) < 8+8+4 {
		return fail("is truncated")
	}
	b := &Block{Hash: hash, Index: binary.BigEndian.Uint64(v), Timestamp: int64(binary.BigEndian.Uint64(v[8:]))}
	v = v[16:]
	n := binary.BigEndian.Uint32(v)
	if uint64(len(v)) < 4+uint64(n)+32+4 {
		return fail("is truncated")
	}
	b.Data = string(v[4 : 4+n])
	v = v[4+n:]
	b.PrevHash = hex.EncodeToString(v[:32])
	v = v[32:]
	n = binary.BigEndian.Uint32(v)
	if uint64(len(v)) < 4+uint64(n) {
		return fail("is truncated")
	}
	b.Author = string(v[4 : 4+n])
	switch sig := v[4+n:]; len(sig) {
	case 0:
	case 64:
		b.Signature = hex.EncodeToString(sig)
	default:
		return fail("has a signature of the wrong size")
	}
	return b, nil
}

// putBlock writes b's body and its index entry.
func putBlock(tx *bolt.Tx, b *Block) error {
	if err := putBody(tx, b); err != nil {
		return err
	}
	return putIndex(tx, b)
}

// putBody writes b's body (its index entry may wait: index.go).
func putBody(tx *bolt.Tx, b *Block) error {
	body, err := encodeBody(b)
	if err != nil {
		return err
	}
	bodies := tx.Bucket(bucketBodies)
	bodies.FillPercent = 0.95 // appended in height order, mostly
	return bodies.Put(bodyKey(b.Index, b.Hash), body)
}

// putIndex writes b's index entry.
func putIndex(tx *bolt.Tx, b *Block) error {
	return tx.Bucket(bucketIndex).Put(hashKey(b.Hash), append(heightKey(b.Index), hashKey(b.PrevHash)...))
}

// getMeta reads the index entry of hash.
func getMeta(tx *bolt.Tx, hash string) (meta, bool, error) {
	v := tx.Bucket(bucketIndex).Get(hashKey(hash))
	if v == nil {
		return meta{}, false, nil
	}
	if len(v) != 40 {
		return meta{}, false, fmt.Errorf("%w: index entry of %s has %d bytes", ErrCorrupt, short(hash), len(v))
	}
	return meta{height: binary.BigEndian.Uint64(v), parent: hex.EncodeToString(v[8:])}, true, nil
}

// getBody reads the block hash at height.
func getBody(tx *bolt.Tx, height uint64, hash string) (*Block, error) {
	v := tx.Bucket(bucketBodies).Get(bodyKey(height, hash))
	if v == nil {
		return nil, fmt.Errorf("%w: block %s at height %d missing", ErrCorrupt, short(hash), height)
	}
	b, err := decodeBody(hash, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if b.Index != height {
		return nil, fmt.Errorf("%w: block %s stored at height %d has index %d", ErrCorrupt, short(hash), height, b.Index)
	}
	return b, nil
}

// getMain reads the main-chain hash at height, "" if there is none.
func getMain(tx *bolt.Tx, height uint64) string {
	v := tx.Bucket(bucketMain).Get(heightKey(height))
	if len(v) != 32 {
		return ""
	}
	return hex.EncodeToString(v)
}

func decodeJSONBlock(v []byte) (*Block, error) {
	var b Block
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// upgrade rewrites a format-1 store (block JSON by hash, line records by
// hash) in the current layout, in one transaction: a crash leaves the old
// store, which the next open upgrades again. It is linear in the chain, once.
func upgrade(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketBodies, bucketIndex, bucketPending} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if err := upgradeBlocks(tx); err != nil {
		return err
	}
	// Line records move to height-ordered keys; pending lines are written
	// down instead of derived at every open.
	recs, err := oldLineRecords(tx)
	if err != nil {
		return err
	}
	last, err := rewriteLineRecords(tx, recs)
	if err != nil {
		return err
	}
	if err := writePendingLines(tx, recs); err != nil {
		return err
	}
	mb := tx.Bucket(bucketMeta)
	if err := mb.Put(keySeq, heightKey(last)); err != nil {
		return err
	}
	return upgradeFormat2(tx)
}

// upgradeFormat2 marks a format-2 store, every block of which is indexed,
// as the current format.
func upgradeFormat2(tx *bolt.Tx) error {
	if err := markAllIndexed(tx); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, heightKey(storeFormat))
}

// upgradeBlocks moves every format-1 block, its hash checked, into the
// bodies and the index, and drops the old bucket.
func upgradeBlocks(tx *bolt.Tx) error {
	err := tx.Bucket(bucketOldBlocks).ForEach(func(k, v []byte) error {
		b, err := decodeJSONBlock(v)
		if err != nil {
			return fmt.Errorf("%w: block %x: %v", ErrCorrupt, k, err)
		}
		if h, err := b.ComputeHash(); err != nil || h != hex.EncodeToString(k) || h != b.Hash {
			return fmt.Errorf("%w: block %x does not match its hash", ErrCorrupt, k)
		}
		return putBlock(tx, b)
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bucketOldBlocks)
}

// upgradedLine is a format-1 line record with its new key (the block's
// bodies key).
type upgradedLine struct {
	key  []byte
	line string
	seq  uint64
}

// oldLineRecords reads the format-1 line records (block hash -> line ID
// and sequence), each keyed anew by its block's height.
func oldLineRecords(tx *bolt.Tx) ([]upgradedLine, error) {
	var recs []upgradedLine
	err := tx.Bucket(bucketLines).ForEach(func(k, v []byte) error {
		if len(k) != 32 || len(v) != 40 {
			return fmt.Errorf("%w: line record %x", ErrCorrupt, k)
		}
		m, ok, err := getMeta(tx, hex.EncodeToString(k))
		if err != nil || !ok {
			return fmt.Errorf("%w: line record names missing block %x", ErrCorrupt, k)
		}
		recs = append(recs, upgradedLine{append(heightKey(m.height), k...), hex.EncodeToString(v[:32]), binary.BigEndian.Uint64(v[32:])})
		return nil
	})
	return recs, err
}

// rewriteLineRecords replaces the lines bucket with recs in the current
// layout and returns the last sequence number among them.
func rewriteLineRecords(tx *bolt.Tx, recs []upgradedLine) (last uint64, err error) {
	if err := tx.DeleteBucket(bucketLines); err != nil {
		return 0, err
	}
	lines, err := tx.CreateBucket(bucketLines)
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if err := lines.Put(r.key, binary.BigEndian.AppendUint64(hashKey(r.line), r.seq)); err != nil {
			return 0, err
		}
		last = max(last, r.seq)
	}
	return last, nil
}

// writePendingLines records as pending each line none of whose blocks is
// on the main chain.
func writePendingLines(tx *bolt.Tx, recs []upgradedLine) error {
	byLine := map[string][]upgradedLine{}
	for _, r := range recs {
		byLine[r.line] = append(byLine[r.line], r)
	}
	for line, rs := range byLine {
		onMain := false
		for _, r := range rs {
			if bytes.Equal(tx.Bucket(bucketMain).Get(r.key[:8]), r.key[8:]) {
				onMain = true
			}
		}
		if onMain {
			continue
		}
		v := heightKey(rs[0].seq)
		for _, r := range rs {
			v = append(v, r.key...)
		}
		if err := tx.Bucket(bucketPending).Put(hashKey(line), v); err != nil {
			return err
		}
	}
	return nil
}

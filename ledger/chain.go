package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxClockDrift is how far ahead of this node's clock a block's timestamp may
// be. A later block is not invalid, only early: it is ignored, not penalised.
const MaxClockDrift = 2 * time.Minute

// MaxOrphans bounds the blocks held while their parent is unknown.
const MaxOrphans = 1024

// Chain is the set of valid blocks a node holds, stored on disk, and the main
// chain chosen among them: the longest, and among equally long ones the one
// whose head hash is lowest, so nodes holding the same blocks agree.
type Chain struct {
	db  *bolt.DB
	now func() time.Time

	mu      sync.RWMutex      // guards the fields below
	known   map[string]uint64 // hash -> height of every stored block
	parents map[string]string // hash -> prevHash of every stored block
	main    []string          // main chain hashes by height
	head    *Block            // main[len(main)-1]
	orphans *orphanPool       // valid blocks waiting for their parent
}

// Option configures a Chain.
type Option func(*Chain)

// WithClock sets the clock used to judge timestamps (tests).
func WithClock(now func() time.Time) Option { return func(c *Chain) { c.now = now } }

// Open opens (creating if needed) the store at path and restores the chain
// from it, checking that every main-chain block links to the one before.
// It returns ErrInUse if another process holds the store and an error
// wrapping ErrCorrupt if its contents are not a valid chain.
func Open(path string, opts ...Option) (c *Chain, err error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	c = &Chain{db: db, now: time.Now, known: map[string]uint64{}, parents: map[string]string{}, orphans: newOrphanPool(MaxOrphans)}
	for _, o := range opts {
		o(c)
	}
	defer func() {
		// bbolt can panic on a damaged file; that is a corrupt store, not a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
		if err != nil {
			db.Close()
		}
	}()
	if err := c.init(); err != nil {
		return nil, err
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// init creates the buckets and writes genesis into an empty store.
func (c *Chain) init() error {
	g := Genesis()
	return c.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) != nil {
			return nil
		}
		for _, name := range [][]byte{bucketBlocks, bucketMain, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := putBlock(tx, g); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyGenesis, hashKey(g.Hash)); err != nil {
			return err
		}
		if err := meta.Put(keyHead, hashKey(g.Hash)); err != nil {
			return err
		}
		return tx.Bucket(bucketMain).Put(heightKey(0), hashKey(g.Hash))
	})
}

// load rebuilds the in-memory index from the store and checks it.
func (c *Chain) load() error {
	g := Genesis()
	return c.db.View(func(tx *bolt.Tx) error {
		blocks, mainB, meta := tx.Bucket(bucketBlocks), tx.Bucket(bucketMain), tx.Bucket(bucketMeta)
		if blocks == nil || mainB == nil || meta == nil {
			return fmt.Errorf("%w: missing buckets", ErrCorrupt)
		}
		if gh := meta.Get(keyGenesis); hex.EncodeToString(gh) != g.Hash {
			return fmt.Errorf("%w: store belongs to another network (genesis %x)", ErrCorrupt, gh)
		}
		err := blocks.ForEach(func(k, v []byte) error {
			var b Block
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("%w: block %x: %v", ErrCorrupt, k, err)
			}
			if h, err := b.ComputeHash(); err != nil || h != hex.EncodeToString(k) || h != b.Hash {
				return fmt.Errorf("%w: block %x does not match its hash", ErrCorrupt, k)
			}
			c.known[b.Hash] = b.Index
			c.parents[b.Hash] = b.PrevHash
			return nil
		})
		if err != nil {
			return err
		}
		var prev *Block
		err = mainB.ForEach(func(k, v []byte) error {
			if len(k) != 8 || bytes.Compare(k, heightKey(uint64(len(c.main)))) != 0 {
				return fmt.Errorf("%w: main chain has a gap at height %d", ErrCorrupt, len(c.main))
			}
			b, err := getBlock(tx, hex.EncodeToString(v))
			if err != nil {
				return err
			}
			switch {
			case b.Index != uint64(len(c.main)):
				return fmt.Errorf("%w: block %s at height %d has index %d", ErrCorrupt, b.Short(), len(c.main), b.Index)
			case prev == nil && b.Hash != g.Hash:
				return fmt.Errorf("%w: main chain does not start at genesis", ErrCorrupt)
			case prev != nil && b.PrevHash != prev.Hash:
				return fmt.Errorf("%w: block %d does not link to block %d", ErrCorrupt, b.Index, prev.Index)
			}
			c.main = append(c.main, b.Hash)
			prev = b
			return nil
		})
		if err != nil {
			return err
		}
		if prev == nil || hex.EncodeToString(meta.Get(keyHead)) != prev.Hash {
			return fmt.Errorf("%w: head pointer does not match the main chain", ErrCorrupt)
		}
		c.head = prev
		return nil
	})
}

// Close closes the store.
func (c *Chain) Close() error { return c.db.Close() }

// Result says what adding a block changed.
type Result struct {
	// Added lists the blocks stored by this call, in order: the block itself,
	// then any held orphans that it connected.
	Added []*Block
	// Head is the head after the call; HeadChanged reports whether it moved.
	Head        *Block
	HeadChanged bool
	// Reorg reports that the previous head is no longer on the main chain.
	Reorg bool
}

// Add validates b and stores it, with every held orphan it connects, in one
// transaction, moving the head if the fork-choice rule says so. A block whose
// parent is unknown is held (bounded) and reported as ErrUnknownParent. Every
// rejection is a RuleError whose Code tells why.
func (c *Chain) Add(b *Block) (Result, error) {
	// Sanity first, even for a hash we hold: a tampered copy of a stored
	// block must be rejected as tampered, not ignored as a duplicate.
	if err := b.CheckSanity(); err != nil {
		return Result{}, err
	}
	if b.Timestamp > c.now().Add(MaxClockDrift).UnixMilli() {
		return Result{}, ruleError(ErrFutureTimestamp, "block %d timestamp %s is ahead of this node's clock", b.Index, b.Time().UTC().Format(time.RFC3339))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.known[b.Hash]; ok {
		return Result{}, ruleError(ErrDuplicate, "block %d %s is already known", b.Index, b.Short())
	}
	ph, ok := c.known[b.PrevHash]
	if !ok {
		c.orphans.add(b)
		return Result{}, ruleError(ErrUnknownParent, "block %d %s: parent %s unknown", b.Index, b.Short(), short(b.PrevHash))
	}
	if b.Index != ph+1 {
		return Result{}, ruleError(ErrBadIndex, "block index %d, parent index %d", b.Index, ph)
	}
	return c.commit(append([]*Block{b}, c.orphans.descendants(b.Hash, b.Index)...))
}

// Append signs data as a new block on the head and stores it.
func (c *Chain) Append(s *Signer, data string) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now()
	// Keep timestamps increasing along the chain even if the clock steps back.
	if floor := c.head.Time().Add(time.Millisecond); t.Before(floor) {
		t = floor
	}
	b, err := s.Sign(c.head, data, t)
	if err != nil {
		return Result{}, err
	}
	return c.commit([]*Block{b})
}

// commit stores blocks (each one's parent stored or earlier in the list) and
// moves the head to the best tip, all in one transaction. c.mu is held.
func (c *Chain) commit(blocks []*Block) (Result, error) {
	best := c.head
	for _, b := range blocks {
		if better(b, best) {
			best = b
		}
	}
	res := Result{Added: blocks, Head: c.head}
	var newMain []string
	if best != c.head {
		newMain = c.mainFor(best, blocks)
		res.Head, res.HeadChanged = best, true
		res.Reorg = best.PrevHash != c.head.Hash
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, b := range blocks {
			if err := putBlock(tx, b); err != nil {
				return err
			}
		}
		if newMain == nil {
			return nil
		}
		mb := tx.Bucket(bucketMain)
		for h := len(c.main) - 1; h >= len(newMain); h-- {
			if err := mb.Delete(heightKey(uint64(h))); err != nil {
				return err
			}
		}
		for h, hash := range newMain {
			if h < len(c.main) && c.main[h] == hash {
				continue
			}
			if err := mb.Put(heightKey(uint64(h)), hashKey(hash)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyHead, hashKey(best.Hash))
	})
	if err != nil {
		return Result{}, fmt.Errorf("store blocks: %w", err)
	}
	for _, b := range blocks {
		c.known[b.Hash] = b.Index
		c.parents[b.Hash] = b.PrevHash
	}
	if newMain != nil {
		c.main, c.head = newMain, best
	}
	return res, nil
}

// mainFor returns the main chain that ends at tip, whose ancestors are stored
// or among pending. c.mu is held.
func (c *Chain) mainFor(tip *Block, pending []*Block) []string {
	parent := func(h string) string {
		if p, ok := c.parents[h]; ok {
			return p
		}
		for _, b := range pending {
			if b.Hash == h {
				return b.PrevHash
			}
		}
		return ""
	}
	// Walk back from tip until the branch meets the current main chain.
	var branch []string
	h, height := tip.Hash, tip.Index
	for height >= uint64(len(c.main)) || c.main[height] != h {
		branch = append(branch, h)
		h, height = parent(h), height-1
	}
	out := make([]string, height+1, tip.Index+1)
	copy(out, c.main[:height+1])
	for i := len(branch) - 1; i >= 0; i-- {
		out = append(out, branch[i])
	}
	return out
}

// better reports whether a is a better head than b: higher, or as high with
// a lower hash.
func better(a, b *Block) bool {
	if a.Index != b.Index {
		return a.Index > b.Index
	}
	return a.Hash < b.Hash
}

// Head returns the head of the main chain.
func (c *Chain) Head() *Block {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.head
}

// Height returns the index of the head.
func (c *Chain) Height() uint64 { return c.Head().Index }

// Has reports whether the block with this hash is stored.
func (c *Chain) Has(hash string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.known[hash]
	return ok
}

// Orphans returns how many blocks are held waiting for their parent.
func (c *Chain) Orphans() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.orphans.len()
}

// Range returns up to limit main-chain blocks starting at index from, in order.
func (c *Chain) Range(from uint64, limit int) ([]*Block, error) {
	c.mu.RLock()
	var hashes []string
	if from < uint64(len(c.main)) && limit > 0 {
		end := min(uint64(len(c.main)), from+uint64(limit))
		hashes = append(hashes, c.main[from:end]...)
	}
	c.mu.RUnlock()
	out := make([]*Block, 0, len(hashes))
	err := c.db.View(func(tx *bolt.Tx) error {
		for _, h := range hashes {
			b, err := getBlock(tx, h)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// BlockAt returns the main-chain block at index i, or nil if there is none.
func (c *Chain) BlockAt(i uint64) (*Block, error) {
	bs, err := c.Range(i, 1)
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	return bs[0], nil
}

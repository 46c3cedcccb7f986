package ledger

import (
	"encoding/hex"
	"math"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What a Chain keeps in memory, whatever the chain's length. Everything
// else is read from the store when needed.
const (
	// tailKeep is how many of the main chain's last hashes are kept (up to
	// twice as many between trims): the head's neighbourhood, where fork
	// choice, reorgs, locators and peers catching up look.
	tailKeep = 4096
	// recentKeep is how many recent blocks' index entries are kept, in each
	// of two generations, so the parents and duplicates that gossip asks
	// about are found without a read.
	recentKeep = 8192
	// verifiedKeep is how many recently verified blocks a chain remembers
	// (in each of two generations) so that further copies skip the
	// signature check (verified.go).
	verifiedKeep = 4096
	// authorKeysKeep is how many authors' keys, decoded and expanded
	// (about 1.6 KiB each), a chain keeps in each of two generations
	// (author.go).
	authorKeysKeep = 512
	// MaxOrphans (chain.go) bounds the blocks held for a missing parent.
)

// metaCache remembers the index entries of recent blocks in two
// generations: when the current one fills it becomes the previous one and
// the old previous one is forgotten. Guarded by Chain.mu (written only with
// it held for writing).
type metaCache struct {
	cur, prev map[string]meta
}

func newMetaCache() *metaCache {
	// No size hint: a map sized for recentKeep is most of a megabyte, for
	// every chain, however short (a thousand simulated nodes held 0.8 GB).
	return &metaCache{cur: map[string]meta{}, prev: map[string]meta{}}
}

func (m *metaCache) add(hash string, v meta) {
	if len(m.cur) >= recentKeep {
		m.prev, m.cur = m.cur, map[string]meta{}
	}
	m.cur[hash] = v
}

func (m *metaCache) get(hash string) (meta, bool) {
	if v, ok := m.cur[hash]; ok {
		return v, true
	}
	v, ok := m.prev[hash]
	return v, ok
}

// sinceRuns records when main-chain heights became so, as runs: heights
// from run i's start up to the next run's became main at run i's time (a
// commit gives its whole branch one time). Times only grow with height.
// Heights below the first run are settled: they joined before Open, or
// their run was pruned once settled. So it holds only the runs of the last
// settle period.
type sinceRuns []sinceRun

type sinceRun struct {
	from uint64
	at   time.Time
}

// reorg records that heights from up became main at t.
func (s *sinceRuns) reorg(from uint64, t time.Time) {
	i := sort.Search(len(*s), func(i int) bool { return (*s)[i].from >= from })
	*s = append((*s)[:i], sinceRun{from, t})
}

// settled reports whether height h has been on the main chain for settle.
func (s sinceRuns) settled(h uint64, now time.Time, settle time.Duration) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].from > h }) - 1
	return i < 0 || now.Sub(s[i].at) >= settle
}

// prune forgets the runs that have settled.
func (s *sinceRuns) prune(now time.Time, settle time.Duration) {
	n := 0
	for n < len(*s) && now.Sub((*s)[n].at) >= settle {
		n++
	}
	if n > 0 {
		*s = append((*s)[:0], (*s)[n:]...)
	}
}

// settledBelow returns a height below which every height is settled (after
// prune: exactly the first height that is not).
func (s sinceRuns) settledBelow() uint64 {
	if len(s) == 0 {
		return math.MaxUint64
	}
	return s[0].from
}

// reader answers questions about the chain for a caller holding c.mu,
// merging what is only in memory (not on disk yet, or cached) with the
// store. Its read transaction opens at first use; done closes it. Opened
// under c.mu, it sees every write whose in-memory copy is gone.
type reader struct {
	c  *Chain
	tx *bolt.Tx
}

func (c *Chain) reader() *reader { return &reader{c: c} }

func (r *reader) txn() (*bolt.Tx, error) {
	if r.tx == nil {
		tx, err := r.c.db.Begin(false)
		if err != nil {
			return nil, err
		}
		r.tx = tx
	}
	return r.tx, nil
}

func (r *reader) done() {
	if r.tx != nil {
		r.tx.Rollback()
		r.tx = nil
	}
}

// meta returns the index entry of hash, and whether the block is stored.
func (r *reader) meta(hash string) (meta, bool, error) {
	if b, ok := r.c.unsynced[hash]; ok {
		return meta{b.Index, b.PrevHash}, true, nil
	}
	if m, ok := r.c.recent.get(hash); ok {
		return m, true, nil
	}
	if m, ok := r.c.unindexed.get(hash); ok {
		return m, true, nil
	}
	if len(hash) != 64 {
		return meta{}, false, nil
	}
	tx, err := r.txn()
	if err != nil {
		return meta{}, false, err
	}
	return getMeta(tx, hash)
}

// stored is meta(b.Hash) for a block at hand: one above every stored
// height is not stored, known without a read. Every new block asks, twice
// (the validator's budget, Process); a read of the store for each was a
// bbolt transaction and a B+tree descent that grow with history.
func (r *reader) stored(b *Block) (meta, bool, error) {
	if b.Index > r.c.top {
		return meta{}, false, nil
	}
	return r.meta(b.Hash)
}

// mainAt returns the main-chain hash at height h (at most the head's).
func (r *reader) mainAt(h uint64) (string, error) {
	c := r.c
	if h >= c.tailBase {
		return c.tail[h-c.tailBase], nil
	}
	tx, err := r.txn()
	if err != nil {
		return "", err
	}
	if m := getMain(tx, h); m != "" {
		return m, nil
	}
	return "", errorf("%w: main chain has no entry at height %d", ErrCorrupt, h)
}

// mainRange returns n main-chain hashes from height from (all at most the
// head's): O(n), from the tail or one cursor walk of the store.
func (r *reader) mainRange(from uint64, n int) ([]string, error) {
	c := r.c
	out := make([]string, 0, n)
	h := from
	if h < c.tailBase {
		tx, err := r.txn()
		if err != nil {
			return nil, err
		}
		cur := tx.Bucket(bucketMain).Cursor()
		for k, v := cur.Seek(heightKey(h)); len(out) < n && h < c.tailBase; k, v = cur.Next() {
			if k == nil || len(v) != 32 || string(k) != string(heightKey(h)) {
				return nil, errorf("%w: main chain has a gap at height %d", ErrCorrupt, h)
			}
			out = append(out, hex.EncodeToString(v))
			h++
		}
	}
	for ; len(out) < n; h++ {
		out = append(out, c.tail[h-c.tailBase])
	}
	return out, nil
}

// block returns the stored block hash at height.
func (r *reader) block(height uint64, hash string) (*Block, error) {
	if b, ok := r.c.unsynced[hash]; ok {
		return b, nil
	}
	tx, err := r.txn()
	if err != nil {
		return nil, err
	}
	return getBody(tx, height, hash)
}

// lineOnMain reports whether a line's block is on the main chain.
func (r *reader) lineOnMain(b lineBlock) bool {
	if b.height > r.c.head.Index {
		return false
	}
	m, err := r.mainAt(b.height)
	return err == nil && m == b.hash
}

package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxClockDrift is how far ahead of this node's clock a block's timestamp may
// be. A later block is not invalid, only early: it is ignored, not penalised.
const MaxClockDrift = 2 * time.Minute

// MaxOrphans bounds the blocks held while their parent is unknown.
const MaxOrphans = 1024

// DefaultFinality is how many main-chain blocks a reorg may replace at most,
// unless WithFinality says otherwise: history deeper than that is settled,
// once it has been on this node's main chain for DefaultSettle.
const DefaultFinality = 64

// DefaultSettle is how long a block must have been on this node's main
// chain before finality protects it (WithSettle). Nodes typing at the same
// moment each extend their own branch faster than gossip crosses between
// them (a pasted or piped batch of lines takes milliseconds); those
// branches must still merge, however deep they grew, when they meet
// seconds later. History that has stood for this long is settled.
const DefaultSettle = 10 * time.Second

// Chain is the set of valid blocks a node holds, stored on disk, and the main
// chain chosen among them: the longest, and among equally long ones the one
// whose head hash is lowest, so nodes holding the same blocks agree.
type Chain struct {
	db       *bolt.DB
	now      func() time.Time
	authors  map[string]bool // if set, the only authors admitted
	finality int             // deepest reorg allowed
	settle   time.Duration   // how long before finality protects a block

	mu      sync.RWMutex      // guards the fields below
	known   map[string]uint64 // hash -> height of every stored block
	parents map[string]string // hash -> prevHash of every stored block
	main    []string          // main chain hashes by height
	since   []time.Time       // when each main-chain block became so (zero: before Open)
	head    *Block            // main[len(main)-1]
	orphans *orphanPool       // valid blocks waiting for their parent
	lines   *lineBook         // lines typed on this node

	verified *verifiedSet // recently checked blocks (own lock)

	unsynced map[string]*Block // committed in memory, not yet on disk
	flush    *flusher          // writes commits to the store in batches
	closed   bool              // Close was called: every change is refused
}

// Option configures a Chain.
type Option func(*Chain)

// WithClock sets the clock used to judge timestamps (tests).
func WithClock(now func() time.Time) Option { return func(c *Chain) { c.now = now } }

// WithAuthors admits only blocks by these authors (peer IDs). Blocks already
// stored are kept; new ones by anyone else are rejected as ErrUnknownAuthor.
func WithAuthors(ids []string) Option {
	return func(c *Chain) {
		c.authors = map[string]bool{}
		for _, id := range ids {
			c.authors[id] = true
		}
	}
}

// WithFinality sets how many main-chain blocks a reorg may replace at most
// (default DefaultFinality). A better branch that forks deeper is refused
// with ErrTooDeep, so a long fabricated branch cannot rewrite settled
// history.
func WithFinality(depth int) Option { return func(c *Chain) { c.finality = depth } }

// WithSettle sets how long a block must have been on this node's main
// chain before a reorg deeper than the finality depth may not remove it
// (default DefaultSettle; 0: at once). Blocks found on disk at Open are
// settled.
func WithSettle(d time.Duration) Option { return func(c *Chain) { c.settle = d } }

// Open opens (creating if needed) the store at path and restores the chain
// from it, checking that every main-chain block links to the one before.
// It returns ErrInUse if another process holds the store and an error
// wrapping ErrCorrupt if its contents are not a valid chain.
func Open(path string, opts ...Option) (c *Chain, err error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	c = &Chain{db: db, now: time.Now, finality: DefaultFinality, settle: DefaultSettle, known: map[string]uint64{}, parents: map[string]string{}, orphans: newOrphanPool(MaxOrphans), lines: newLineBook(), unsynced: map[string]*Block{}, verified: newVerifiedSet()}
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
	c.flush = startFlusher(c)
	return c, nil
}

// init creates the buckets and writes genesis into an empty store.
func (c *Chain) init() error {
	g := Genesis()
	return c.db.Update(func(tx *bolt.Tx) error {
		// Stores written before local lines were tracked lack that bucket.
		if _, err := tx.CreateBucketIfNotExists(bucketLines); err != nil {
			return err
		}
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
			c.since = append(c.since, time.Time{})
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
		return c.lines.load(tx, c.known, c.onMain)
	})
}

// Close writes what is not on disk yet and closes the store. Every change
// after it fails at once with ErrClosed; a second Close returns nil.
func (c *Chain) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if was {
		return nil
	}
	// No commit can join the queue now: commits check c.closed under c.mu.
	err := c.flush.stop()
	if cerr := c.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Result says what adding a block changed.
type Result struct {
	// Added lists the blocks stored by this call, in order: the block itself,
	// then any held orphans that it connected.
	Added []*Block
	// Head is the head after the call; HeadChanged reports whether it moved.
	Head        *Block
	HeadChanged bool
	// Reorg reports that the previous head is no longer on the main chain;
	// Dropped is how many blocks left the main chain.
	Reorg   bool
	Dropped int

	durable *durability // settled once the change is on disk, or failed
	flush   *flusher
}

// durability is the outcome of one commit's write: err is set before done
// is closed, and never changes after.
type durability struct {
	done chan struct{}
	err  error
}

func newDurability() *durability { return &durability{done: make(chan struct{})} }

func (d *durability) settle(err error) {
	d.err = err
	close(d.done)
}

// Wait returns once the blocks of this result are on disk (fsynced), or the
// store's error; called again, it gives the same answer. Blocks are usable,
// relayable and served at once; only acknowledgements (an API answer, a
// console line) need to wait.
func (r Result) Wait() error {
	if r.durable == nil {
		return nil
	}
	r.flush.waiting()
	<-r.durable.done
	return r.durable.err
}

// Add validates b and stores it, with every held orphan it connects, in one
// transaction, moving the head if the fork-choice rule says so. A block whose
// parent is unknown is held (bounded) and reported as ErrUnknownParent. Every
// rejection is a RuleError whose Code tells why.
func (c *Chain) Add(b *Block) (Result, error) {
	// Sanity first, even for a hash we hold: a tampered copy of a stored
	// block must be rejected as tampered, not ignored as a duplicate.
	if err := c.check(b); err != nil {
		return Result{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Result{}, ErrClosed
	}
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
	return c.commit(append([]*Block{b}, c.orphans.descendants(b.Hash, b.Index)...), nil)
}

// check is the part of validation that needs no other block. A copy of a
// block checked moments ago passes at the cost of a hash.
func (c *Chain) check(b *Block) error {
	if c.verified.has(b) {
		return nil
	}
	if err := c.checkNew(b); err != nil {
		return err
	}
	c.verified.add(b)
	return nil
}

func (c *Chain) checkNew(b *Block) error {
	if err := b.CheckSanity(); err != nil {
		return err
	}
	if c.authors != nil && !c.authors[b.Author] {
		return ruleError(ErrUnknownAuthor, "block %d author %s is not on the authors list", b.Index, b.Author)
	}
	if b.Timestamp > c.now().Add(MaxClockDrift).UnixMilli() {
		return ruleError(ErrFutureTimestamp, "block %d timestamp %s is ahead of this node's clock", b.Index, b.Time().UTC().Format(time.RFC3339))
	}
	return nil
}

// AddBlocks adds a run of blocks fetched from a peer, in order: each block's
// parent must be stored or earlier in the run. Blocks already stored are
// skipped. Signatures are checked in parallel, then the valid blocks before
// the first invalid one are stored in one transaction, so a reorg to the
// fetched branch is atomic; the error names the first invalid block. Unlike
// Add, a block with an unknown parent is not held: a fetched run must link.
func (c *Chain) AddBlocks(bs []*Block) (Result, error) {
	return c.AddChecked(c.Check(bs))
}

// Checked is a run of blocks whose hashes, signatures and timestamps have
// been checked by Chain.Check, ready for AddChecked. Checking needs no lock,
// so a caller can check the next run while the previous one is stored.
type Checked struct {
	blocks []*Block
	valid  int   // how many leading blocks passed
	err    error // why the next one did not
}

// Check checks every block of a run on its own (everything but its link to
// the chain), spreading the signature checks over the CPUs.
func (c *Chain) Check(bs []*Block) *Checked {
	valid, err := c.checkAll(bs)
	return &Checked{blocks: bs, valid: valid, err: err}
}

// AddChecked is AddBlocks for a run already checked.
func (c *Chain) AddChecked(run *Checked) (Result, error) {
	firstErr := run.err
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Result{}, ErrClosed
	}
	var batch []*Block
	inBatch := map[string]uint64{}
	for _, b := range run.blocks[:run.valid] {
		if _, ok := c.known[b.Hash]; ok {
			continue
		}
		if _, ok := inBatch[b.Hash]; ok {
			continue // connected from the orphan pool earlier in this run
		}
		ph, ok := c.known[b.PrevHash]
		if !ok {
			ph, ok = inBatch[b.PrevHash]
		}
		if !ok {
			firstErr = ruleError(ErrUnknownParent, "block %d %s: parent %s unknown", b.Index, b.Short(), short(b.PrevHash))
			break
		}
		if b.Index != ph+1 {
			firstErr = ruleError(ErrBadIndex, "block index %d, parent index %d", b.Index, ph)
			break
		}
		for _, a := range append([]*Block{b}, c.orphans.descendants(b.Hash, b.Index)...) {
			batch = append(batch, a)
			inBatch[a.Hash] = a.Index
		}
	}
	if len(batch) == 0 {
		return Result{Head: c.head}, firstErr
	}
	res, err := c.commit(batch, nil)
	if err != nil {
		return res, err
	}
	return res, firstErr
}

// checkAll checks every block on its own, spreading the signature checks
// over the CPUs. It returns how many leading blocks passed and the first
// failure.
func (c *Chain) checkAll(bs []*Block) (int, error) {
	errs := make([]error, len(bs))
	workers := min(runtime.GOMAXPROCS(0), (len(bs)+31)/32)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(bs); i += workers {
				errs[i] = c.check(bs[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return i, err
		}
	}
	return len(bs), nil
}

// Append signs data as a new block on the head and adds it. The block can
// be published at once; call Result.Wait before acknowledging it (it is on
// disk when Wait returns).
func (c *Chain) Append(s *Signer, data string) (Result, error) {
	if c.authors != nil && !c.authors[s.ID()] {
		return Result{}, ruleError(ErrUnknownAuthor, "this node (%s) is not on the authors list", s.ID())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Result{}, ErrClosed
	}
	b, err := c.signOn(s, c.head, data)
	if err != nil {
		return Result{}, err
	}
	return c.commit([]*Block{b}, []localLine{{hash: b.Hash, line: b.Hash, seq: c.lines.next()}})
}

// signOn signs data as the child of parent, keeping timestamps increasing
// along the chain even if the clock steps back.
func (c *Chain) signOn(s *Signer, parent *Block, data string) (*Block, error) {
	t := c.now()
	if floor := parent.Time().Add(time.Millisecond); t.Before(floor) {
		t = floor
	}
	b, err := s.Sign(parent, data, t)
	if err == nil {
		c.verified.add(b)
	}
	return b, err
}

// commit adds blocks (each one's parent stored or earlier in the list),
// records the local lines among them, and moves the head to the best tip:
// at once in memory, and in one store transaction that the flusher writes,
// with whatever else was committed meanwhile, under one fsync. Result.Wait
// returns when that transaction is durable. c.mu is held.
func (c *Chain) commit(blocks []*Block, local []localLine) (Result, error) {
	if c.closed {
		return Result{}, ErrClosed
	}
	best := c.head
	for _, b := range blocks {
		if better(b, best) {
			best = b
		}
	}
	res := Result{Added: blocks, Head: c.head}
	var fork int // height where the new main chain leaves the old one
	var branch []string
	if best != c.head {
		fork, branch = c.branchTo(best, blocks)
		res.Head, res.HeadChanged = best, true
		res.Dropped = len(c.main) - 1 - fork
		res.Reorg = res.Dropped > 0
		if res.Dropped > c.finality && c.settled(fork+1) {
			return Result{}, ruleError(ErrTooDeep, "branch to block %d %s forks at height %d: it would replace %d blocks, finality depth is %d", best.Index, best.Short(), fork, res.Dropped, c.finality)
		}
	}
	if err := c.flush.failed(); err != nil {
		return Result{}, err
	}
	w := &write{blocks: blocks, local: local, oldLen: len(c.main), fork: fork, branch: branch, done: newDurability()}
	if branch != nil {
		w.head = best.Hash
	}
	for _, b := range blocks {
		c.known[b.Hash] = b.Index
		c.parents[b.Hash] = b.PrevHash
		c.unsynced[b.Hash] = b
	}
	res.durable, res.flush = w.done, c.flush
	c.flush.enqueue(w)
	for _, l := range local {
		c.lines.add(l)
	}
	if branch != nil {
		dropped := append([]string(nil), c.main[fork+1:]...)
		c.main = append(c.main[:fork+1], branch...)
		now := c.now()
		c.since = c.since[:fork+1]
		for range branch {
			c.since = append(c.since, now)
		}
		c.head = best
		c.lines.update(dropped, branch, c.onMain)
	}
	return res, nil
}

// settled reports whether the main-chain block at height h has been there
// for c.settle. Times only grow with height (a reorg gives its whole branch
// the same, later time), so the deepest block a reorg drops decides. c.mu
// is held.
func (c *Chain) settled(h int) bool {
	at := c.since[h]
	return at.IsZero() || c.now().Sub(at) >= c.settle
}

// branchTo returns the height where the chain ending at tip leaves the main
// chain and the hashes above it, oldest first. The tip's ancestors are stored
// or among pending. c.mu is held.
func (c *Chain) branchTo(tip *Block, pending []*Block) (int, []string) {
	pendingParents := make(map[string]string, len(pending))
	for _, b := range pending {
		pendingParents[b.Hash] = b.PrevHash
	}
	parent := func(h string) string {
		if p, ok := c.parents[h]; ok {
			return p
		}
		return pendingParents[h]
	}
	var branch []string
	h, height := tip.Hash, tip.Index
	for height >= uint64(len(c.main)) || c.main[height] != h {
		branch = append(branch, h)
		h, height = parent(h), height-1
	}
	slices.Reverse(branch)
	return int(height), branch
}

// onMain reports whether the stored block hash is on the main chain. c.mu is
// held.
func (c *Chain) onMain(hash string) bool {
	h, ok := c.known[hash]
	return ok && h < uint64(len(c.main)) && c.main[h] == hash
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
	fresh := c.unsyncedOf(hashes)
	c.mu.RUnlock()
	out := make([]*Block, 0, len(hashes))
	err := c.view(func(tx *bolt.Tx) error {
		for _, h := range hashes {
			if b, ok := fresh[h]; ok {
				out = append(out, b)
				continue
			}
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

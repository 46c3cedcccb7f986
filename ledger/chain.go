package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
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
//
// The index lives on disk (store.go); memory holds what is near the head
// (the main chain's last hashes, recent blocks' index entries, lines a
// reorg can reach, when recent blocks joined the main chain), what is not
// on disk yet, and caches, each bounded by a constant in cache.go. Its cost
// does not grow with the chain's length.
type Chain struct {
	db       *bolt.DB
	now      func() time.Time
	authors  map[string]bool // if set, the only authors admitted
	finality int             // deepest reorg allowed
	settle   time.Duration   // how long before finality protects a block

	mu       sync.RWMutex // guards the fields below
	head     *Block
	tail     []string   // main-chain hashes at heights tailBase..head.Index
	tailBase uint64     // the height of tail[0]
	since    sinceRuns  // when recent main-chain heights became so
	recent   *metaCache // index entries of recent blocks
	// unindexed: index entries of stored blocks not in the index bucket
	// yet (index.go); indexedTo: the store's mark when the chain opened.
	unindexed unindexed
	indexedTo uint64
	orphans   *orphanPool       // valid blocks waiting for their parent
	lines     *lineBook         // lines typed on this node that a reorg can reach
	unsynced  map[string]*Block // committed in memory, not yet on disk
	top       uint64            // the highest index of any stored block, side branches too
	dirty     []dirtySpan       // main heights changed by commits not yet on disk
	seq       uint64            // commits made
	closed    bool              // Close was called: every change is refused

	verified *verifiedSet // recently checked blocks (own lock)
	keys     *keyCache    // recent authors' keys (own lock)
	flush    *flusher     // writes commits to the store in batches
}

// dirtySpan says that commit seq changed the main chain from height low up.
type dirtySpan struct{ seq, low uint64 }

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
// (default DefaultFinality) unless the branch is the members' (deepfork.go):
// a better branch that forks deeper is refused with ErrTooDeep, so an
// outsider's long fabricated branch cannot rewrite settled history.
func WithFinality(depth int) Option { return func(c *Chain) { c.finality = depth } }

// WithSettle sets how long a block must have been on this node's main
// chain before a reorg deeper than the finality depth may not remove it
// (default DefaultSettle; 0: at once). Blocks found on disk at Open are
// settled.
func WithSettle(d time.Duration) Option { return func(c *Chain) { c.settle = d } }

// Open opens (creating if needed) the store at path and restores the chain
// from it. It checks what a crash or a torn disk write near the head could
// have touched: the head pointer, the main chain's last entries and the
// last finality-depth blocks (hash, link, signature). CheckStore verifies
// everything. Open returns ErrInUse if another process holds the store and
// an error wrapping ErrCorrupt if its contents are not a valid chain.
func Open(path string, opts ...Option) (c *Chain, err error) {
	db, err := openDB(path, false)
	if err != nil {
		return nil, err
	}
	c = &Chain{db: db, now: time.Now, finality: DefaultFinality, settle: DefaultSettle, recent: newMetaCache(), unindexed: unindexed{}, orphans: newOrphanPool(MaxOrphans), lines: newLineBook(), unsynced: map[string]*Block{}, verified: newVerifiedSet(), keys: newKeyCache()}
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
	if err := initStore(db); err != nil {
		return nil, err
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.flush = startFlusher(c)
	return c, nil
}

// initStore creates the buckets and writes genesis into an empty store, and
// upgrades a store of an older format.
func initStore(db *bolt.DB) error {
	g := Genesis()
	return db.Update(func(tx *bolt.Tx) error {
		// Stores written before local lines were tracked lack that bucket.
		if _, err := tx.CreateBucketIfNotExists(bucketLines); err != nil {
			return err
		}
		if mb := tx.Bucket(bucketMeta); mb != nil {
			switch v := mb.Get(keyFormat); {
			case v == nil && tx.Bucket(bucketOldBlocks) != nil:
				return upgrade(tx)
			case len(v) == 8 && binary.BigEndian.Uint64(v) > storeFormat:
				return fmt.Errorf("%w: store format %d is newer than this gossipchain (%d)", ErrCorrupt, binary.BigEndian.Uint64(v), storeFormat)
			case len(v) == 8 && binary.BigEndian.Uint64(v) == 2:
				return upgradeFormat2(tx)
			}
			return nil
		}
		for _, name := range [][]byte{bucketBodies, bucketIndex, bucketMain, bucketPending, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := putBlock(tx, g); err != nil {
			return err
		}
		mb := tx.Bucket(bucketMeta)
		for k, v := range map[string][]byte{string(keyGenesis): hashKey(g.Hash), string(keyHead): hashKey(g.Hash), string(keyFormat): heightKey(storeFormat), string(keyIndexed): heightKey(0)} {
			if err := mb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMain).Put(heightKey(0), hashKey(g.Hash))
	})
}

// load reads the head and the main chain's last tailKeep hashes, checking
// them, and the lines a reorg can reach.
func (c *Chain) load() error {
	g := Genesis()
	return c.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBodies, bucketIndex, bucketMain, bucketLines, bucketPending, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: missing bucket %s", ErrCorrupt, name)
			}
		}
		mb := tx.Bucket(bucketMeta)
		if gh := mb.Get(keyGenesis); hex.EncodeToString(gh) != g.Hash {
			return fmt.Errorf("%w: store belongs to another network (genesis %x)", ErrCorrupt, gh)
		}
		if getMain(tx, 0) != g.Hash {
			return fmt.Errorf("%w: main chain does not start at genesis", ErrCorrupt)
		}
		// Bodies are keyed by height first: the last is the highest.
		if k, _ := tx.Bucket(bucketBodies).Cursor().Last(); len(k) >= 8 {
			c.top = binary.BigEndian.Uint64(k)
		}
		var err error
		if c.indexedTo, err = c.loadUnindexed(tx); err != nil {
			return err
		}
		headHash := hex.EncodeToString(mb.Get(keyHead))
		m, ok := c.unindexed.get(headHash)
		if !ok {
			if m, ok, err = getMeta(tx, headHash); err != nil {
				return err
			}
		}
		if !ok {
			return fmt.Errorf("%w: head pointer %s names no stored block", ErrCorrupt, short(headHash))
		}
		if last, _ := tx.Bucket(bucketMain).Cursor().Last(); !bytes.Equal(last, heightKey(m.height)) || getMain(tx, m.height) != headHash {
			return fmt.Errorf("%w: head pointer (block %d %s) does not match the main chain's last entry", ErrCorrupt, m.height, short(headHash))
		}
		if err := c.loadTail(tx, m.height); err != nil {
			return err
		}
		from := uint64(0)
		if m.height > uint64(c.finality) {
			from = m.height - uint64(c.finality)
		}
		return c.lines.load(tx, from)
	})
}

// loadTail reads the main chain's last hashes below height, the head's,
// each entry present, and checks the blocks down to the finality depth:
// whole, linked, signed.
func (c *Chain) loadTail(tx *bolt.Tx, height uint64) error {
	n := min(height+1, tailKeep)
	c.tailBase = height + 1 - n
	c.tail = make([]string, n)
	cur := tx.Bucket(bucketMain).Cursor()
	k, v := cur.Seek(heightKey(c.tailBase))
	for i := range n {
		if !bytes.Equal(k, heightKey(c.tailBase+i)) || len(v) != 32 {
			return fmt.Errorf("%w: main chain has a gap at height %d", ErrCorrupt, c.tailBase+i)
		}
		c.tail[i] = hex.EncodeToString(v)
		k, v = cur.Next()
	}
	// The blocks down to the finality depth: whole, linked, signed.
	var child *Block
	for h := height; ; h-- {
		b, err := getBody(tx, h, c.tail[h-c.tailBase])
		if err != nil {
			return err
		}
		if h > 0 {
			if err := b.checkSanity(c.keys); err != nil {
				return fmt.Errorf("%w: block %d %s: %v", ErrCorrupt, h, b.Short(), err)
			}
		}
		if child != nil && child.PrevHash != b.Hash {
			return fmt.Errorf("%w: block %d does not link to block %d", ErrCorrupt, child.Index, h)
		}
		if child == nil {
			c.head = b
		}
		c.recent.add(b.Hash, meta{b.Index, b.PrevHash})
		child = b
		if h == 0 || h == c.tailBase || height-h >= uint64(c.finality) {
			break
		}
	}
	if child.Index == 0 && child.Hash != Genesis().Hash {
		return fmt.Errorf("%w: main chain does not start at genesis", ErrCorrupt)
	}
	return nil
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

// Add checks blocks and stores them: Process(Check(bs...)). A caller
// with a policy of its own for valid blocks (a budget) checks first, then
// processes.
func (c *Chain) Add(bs ...*Block) (Result, error) { return c.Process(c.Check(bs...)) }

// Checked is a run of blocks whose hashes, signatures and policy (authors
// list, clock) Chain.Check has checked, ready for Process. Checking needs
// no lock, so a caller can check the next run while the previous one is
// stored.
type Checked struct {
	blocks []*Block
	valid  int   // how many leading blocks passed
	err    error // why the next one did not
}

// Valid returns how many leading blocks of the run passed, and why the next
// did not.
func (r *Checked) Valid() (int, error) { return r.valid, r.err }

// Blocks returns the run.
func (r *Checked) Blocks() []*Block { return r.blocks }

// Limit keeps only the first n blocks of the run for Process (a caller's
// own policy, such as a budget, stops it there; not an error of the run).
func (r *Checked) Limit(n int) {
	if n < r.valid {
		r.valid, r.err = n, nil
	}
}

// Check checks every block of a run on its own: everything but its link to
// the chain, signatures in batches spread over the CPUs. A copy of a block
// checked moments ago passes at the cost of a hash, and a tampered copy of
// a stored block fails as tampered.
func (c *Chain) Check(bs ...*Block) *Checked {
	valid, err := c.checkAll(bs)
	return &Checked{blocks: bs, valid: valid, err: err}
}

// Process is how blocks from elsewhere (gossip, sync) change the chain; it
// is the only way but Append and Reappend, which add this node's own
// lines. It stores the valid blocks of run before the first invalid one,
// in order, with every held orphan they connect, in one transaction, so a
// reorg to a fetched branch is atomic, and moves the head if the
// fork-choice rule says so. Each block's parent must be stored or earlier
// in the run. Blocks already stored are skipped; if that was all of them,
// the error is ErrDuplicate. A lone block whose parent is unknown is held
// (bounded) for its parent to arrive, as gossip brings them; a longer run
// must link. The error is a RuleError whose Code tells why, for the first
// block not stored.
func (c *Chain) Process(run *Checked) (Result, error) {
	firstErr := run.err
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Result{}, ErrClosed
	}
	r := c.reader()
	defer r.done()
	var batch []*Block
	inBatch := map[string]uint64{}
	known := 0
	for _, b := range run.blocks[:run.valid] {
		if _, ok := inBatch[b.Hash]; ok {
			continue // connected from the orphan pool earlier in this run
		}
		if _, ok, err := r.stored(b); err != nil {
			return Result{}, err
		} else if ok {
			known++
			continue
		}
		ph, ok := inBatch[b.PrevHash]
		if !ok {
			pm, found, err := r.meta(b.PrevHash)
			if err != nil {
				return Result{}, err
			}
			ph, ok = pm.height, found
		}
		if !ok {
			if len(run.blocks) == 1 {
				c.orphans.add(b)
			}
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
		if firstErr == nil && known > 0 {
			last := run.blocks[run.valid-1]
			firstErr = ruleError(ErrDuplicate, "block %d %s is already known", last.Index, last.Short())
		}
		return Result{Head: c.head}, firstErr
	}
	res, err := c.commit(r, batch, nil)
	if err != nil {
		return res, err
	}
	return res, firstErr
}

// checkAll checks every block on its own, the signatures in batches over
// the CPUs (one block alone: on this goroutine). It returns how many
// leading blocks passed and the first failure.
func (c *Chain) checkAll(bs []*Block) (int, error) {
	if len(bs) == 1 {
		if err := c.check(bs[0]); err != nil {
			return 0, err
		}
		return 1, nil
	}
	errs := checkRun(bs, c.keys, c.verified.has, c.checkPolicy)
	for i, err := range errs {
		if err != nil {
			return i, err
		}
		c.verified.add(bs[i])
	}
	return len(bs), nil
}

// CheckAhead checks blocks that are about to be checked one by one (gossip
// messages queued for the validator), their signatures in one batch, and
// remembers those that pass: their Check then costs a hash. A batch of 64
// costs 11.6 us a signature, one alone 23.4 (go test -run '^$' -bench
// VerifyBatch ./ledger). Blocks known already are skipped; a block that
// fails is forgotten, and fails again when it is checked.
func (c *Chain) CheckAhead(bs ...*Block) {
	for i, err := range checkRun(bs, c.keys, c.verified.has, c.checkPolicy) {
		if err == nil {
			c.verified.add(bs[i])
		}
	}
}

// check checks one block on its own, remembering it as checked.
func (c *Chain) check(b *Block) error {
	if c.verified.has(b) {
		return nil
	}
	if err := b.checkSanity(c.keys); err != nil {
		return err
	}
	if err := c.checkPolicy(b); err != nil {
		return err
	}
	c.verified.add(b)
	return nil
}

// checkPolicy is what this chain adds to a block's own validity: the
// authors list and the clock.
func (c *Chain) checkPolicy(b *Block) error {
	if c.authors != nil && !c.authors[b.Author] {
		return ruleError(ErrUnknownAuthor, "block %d author %s is not on the authors list", b.Index, b.Author)
	}
	if b.Timestamp > c.now().Add(MaxClockDrift).UnixMilli() {
		return ruleError(ErrFutureTimestamp, "block %d timestamp %s is ahead of this node's clock", b.Index, b.Time().UTC().Format(time.RFC3339))
	}
	return nil
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
	r := c.reader()
	defer r.done()
	return c.commit(r, []*Block{b}, []localLine{{hash: b.Hash, height: b.Index, line: b.Hash, seq: c.lines.next()}})
}

// signOn signs data as the child of parent, its timestamp never before the
// parent's even if the clock steps back. Never after it either, but for
// the clock: blocks made faster than one a millisecond share their
// timestamp. A floor of parent + 1 ms pushed a piped file's blocks ahead
// of the clock (200,000 lines at 4,000 a second ended 150 s in the
// future), and peers ignore a block more than MaxClockDrift ahead, so a
// late joiner's sync stopped at every such block until the clock caught
// up.
func (c *Chain) signOn(s *Signer, parent *Block, data string) (*Block, error) {
	t := c.now()
	if floor := parent.Time(); t.Before(floor) {
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
func (c *Chain) commit(r *reader, blocks []*Block, local []localLine) (Result, error) {
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
	var fork uint64 // height where the new main chain leaves the old one
	var branch, dropped []string
	if best != c.head {
		var err error
		if fork, branch, err = c.branchTo(r, best, blocks); err != nil {
			return Result{}, err
		}
		res.Head, res.HeadChanged = best, true
		res.Dropped = int(c.head.Index - fork)
		res.Reorg = res.Dropped > 0
		if res.Dropped > c.finality && c.since.settled(fork+1, c.now(), c.settle) {
			if err := c.deepFork(r, best, fork, branch, blocks, res.Dropped); err != nil {
				return Result{}, err
			}
		}
		if res.Reorg {
			if dropped, err = r.mainRange(fork+1, res.Dropped); err != nil {
				return Result{}, err
			}
		}
	}
	if err := c.flush.failed(); err != nil {
		return Result{}, err
	}
	c.seq++
	w := &write{seq: c.seq, blocks: blocks, local: local, fork: fork, branch: branch, done: newDurability()}
	if branch != nil {
		w.head = best.Hash
	}
	for _, b := range blocks {
		c.unsynced[b.Hash] = b
		c.recent.add(b.Hash, meta{b.Index, b.PrevHash})
		c.top = max(c.top, b.Index)
	}
	for _, l := range local {
		c.lines.add(l)
	}
	if branch != nil {
		now := c.now()
		if fork+1 < c.tailBase {
			c.tail, c.tailBase = slices.Clone(branch), fork+1
		} else {
			c.tail = append(c.tail[:fork+1-c.tailBase], branch...)
		}
		c.since.reorg(fork+1, now)
		c.head = best
		c.dirty = append(c.dirty, dirtySpan{c.seq, fork + 1})
		c.lines.update(dropped, branch, r.lineOnMain)
		c.tidy(r, now)
	}
	w.pending = c.lines.takeDirty()
	res.durable, res.flush = w.done, c.flush
	c.flush.enqueue(w)
	return res, nil
}

// tidy bounds what memory holds of the past: the tail of main-chain hashes,
// the times heights joined the main chain, and the lines no reorg can reach
// any more. c.mu is held.
func (c *Chain) tidy(r *reader, now time.Time) {
	c.since.prune(now, c.settle)
	if head := c.head.Index; head > uint64(c.finality) {
		below := c.since.settledBelow()
		for _, d := range c.dirty {
			// Not on disk yet: memory is the only copy of their line
			// records, which a deep fork would need back (recallLines).
			below = min(below, d.low)
		}
		if below > 0 {
			c.lines.prune(min(head-uint64(c.finality)-1, below-1), r.lineOnMain)
		}
	}
	if len(c.tail) <= 2*tailKeep {
		return
	}
	base := c.head.Index + 1 - tailKeep
	for _, d := range c.dirty {
		base = min(base, d.low) // not on disk yet: the tail is its only copy
	}
	if base > c.tailBase {
		c.tail = slices.Clone(c.tail[base-c.tailBase:])
		c.tailBase = base
	}
}

// flushed forgets the in-memory copies of what the writes of batch put on
// disk. Index entries they deferred wait in c.unindexed, unless the
// transaction wrote every waiting entry (indexed). c.mu is held.
func (c *Chain) flushed(batch []*write, deferred []*Block, indexed bool) {
	if indexed {
		c.unindexed = unindexed{}
	} else {
		for _, b := range deferred {
			c.unindexed.add(b)
		}
	}
	for _, w := range batch {
		for _, b := range w.blocks {
			delete(c.unsynced, b.Hash)
		}
	}
	if len(batch) == 0 {
		return // Close writing the waiting index entries alone
	}
	last := batch[len(batch)-1].seq
	n := 0
	for n < len(c.dirty) && c.dirty[n].seq <= last {
		n++
	}
	c.dirty = slices.Delete(c.dirty, 0, n)
}

// branchTo returns the height where the chain ending at tip leaves the main
// chain and the hashes above it, oldest first. The tip's ancestors are stored
// or among pending. c.mu is held.
func (c *Chain) branchTo(r *reader, tip *Block, pending []*Block) (uint64, []string, error) {
	pendingParents := make(map[string]string, len(pending))
	for _, b := range pending {
		pendingParents[b.Hash] = b.PrevHash
	}
	var branch []string
	h, height := tip.Hash, tip.Index
	for {
		if height <= c.head.Index {
			m, err := r.mainAt(height)
			if err != nil {
				return 0, nil, err
			}
			if m == h {
				break
			}
		}
		branch = append(branch, h)
		p, ok := pendingParents[h]
		if !ok {
			m, found, err := r.meta(h)
			if err != nil {
				return 0, nil, err
			}
			if !found || height == 0 {
				return 0, nil, fmt.Errorf("%w: block %s has no stored parent", ErrCorrupt, short(h))
			}
			p = m.parent
		}
		h, height = p, height-1
	}
	slices.Reverse(branch)
	return height, branch, nil
}

// BetterHead is the fork-choice rule: whether the chain ending at (height,
// hash) is better than the one ending at (thanHeight, thanHash): higher, or
// as high with a lower hash. Every comparison of heads, here and between
// peers (protocol.Status.Better), is this one.
func BetterHead(height uint64, hash string, thanHeight uint64, thanHash string) bool {
	if height != thanHeight {
		return height > thanHeight
	}
	return hash < thanHash
}

// better reports whether a is a better head than b.
func better(a, b *Block) bool { return BetterHead(a.Index, a.Hash, b.Index, b.Hash) }

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
	return c.has(func(r *reader) (meta, bool, error) { return r.meta(hash) })
}

// HasBlock is Has(b.Hash), answered without reading the store for a block
// above every stored height (a new block, the common case).
func (c *Chain) HasBlock(b *Block) bool {
	return c.has(func(r *reader) (meta, bool, error) { return r.stored(b) })
}

func (c *Chain) has(lookup func(*reader) (meta, bool, error)) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	r := c.reader()
	defer r.done()
	_, ok, _ := lookup(r)
	return ok
}

// Orphans returns how many blocks are held waiting for their parent.
func (c *Chain) Orphans() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.orphans.len()
}

// mainSlice returns the main-chain hashes from index from, at most limit,
// and the in-memory copies of those not on disk yet.
func (c *Chain) mainSlice(from uint64, limit int) ([]string, map[string]*Block, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	if from > c.head.Index || limit <= 0 {
		return nil, nil, nil
	}
	r := c.reader()
	defer r.done()
	hashes, err := r.mainRange(from, int(min(uint64(limit), c.head.Index-from+1)))
	if err != nil {
		return nil, nil, err
	}
	return hashes, c.unsyncedOf(hashes), nil
}

// Range returns up to limit main-chain blocks starting at index from, in order.
func (c *Chain) Range(from uint64, limit int) ([]*Block, error) {
	hashes, fresh, err := c.mainSlice(from, limit)
	if err != nil || len(hashes) == 0 {
		return nil, err
	}
	out := make([]*Block, 0, len(hashes))
	err = c.view(func(tx *bolt.Tx) error {
		for i, h := range hashes {
			if b, ok := fresh[h]; ok {
				out = append(out, b)
				continue
			}
			b, err := getBody(tx, from+uint64(i), h)
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

// unsyncedOf returns the blocks among hashes that are not on disk yet.
// c.mu is held.
func (c *Chain) unsyncedOf(hashes []string) map[string]*Block {
	if len(c.unsynced) == 0 {
		return nil
	}
	out := map[string]*Block{}
	for _, h := range hashes {
		if b, ok := c.unsynced[h]; ok {
			out[h] = b
		}
	}
	return out
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

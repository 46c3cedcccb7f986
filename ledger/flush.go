package ledger

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Commits change the chain in memory at once; the flusher
// writes them to the store in order, every commit waiting meanwhile in one
// transaction and one fsync. A block is then checked, stored in memory and
// relayed without waiting for the disk, and a burst costs one fsync per
// batch rather than per block. Each transaction holds whole commits (a reorg
// with its blocks), so a crash leaves the store at a commit boundary: the
// old chain or the new one, never a mix, and never a block that is not
// linked. Blocks lost in a crash were not acknowledged to anyone (Append
// waits) and come back from peers by sync.
//
// A commit nobody waits for (a block received by gossip or sync) waits up
// to lazyFlush for company; Result.Wait hurries the flusher, so an append
// being acknowledged never waits for that. A node relaying a steady stream
// then fsyncs a few times a second instead of once per block, and many
// nodes in one process or on one disk stay out of each other's way.

// write is one commit's changes to the store.
type write struct {
	seq     uint64 // the commit's sequence number
	blocks  []*Block
	local   []localLine
	pending map[string][]byte // pending-line records to put (nil value: delete)
	fork    uint64            // height where the new main chain leaves the old one
	branch  []string          // main-chain hashes above fork, if the head moved
	head    string            // the new head, if it moved
	done    *durability
}

// lazyFlush is the longest a commit nobody waits for stays in memory only.
// At 100 received blocks/s, 50 ms meant 20 bbolt commits a second per node,
// 15% of a node's CPU in a paced stream (process mode's profile); 250 ms is
// 4 a second, and a crash costs at most a quarter second of received
// blocks, which sync fetches again.
//
// Each wait is drawn between three quarters of it and all of it. Nodes
// receive a stream's blocks within milliseconds of each other, so with a
// fixed wait every node on a machine committed at the same instant, four
// times a second: 25 node processes on two cores stalled 10-40 ms each time
// (their slowest blocks in a paced stream all came just after one).
const lazyFlush = 250 * time.Millisecond

// lazyWait is one wait for company: lazyFlush less up to a quarter.
func lazyWait() time.Duration {
	return lazyFlush - rand.N(lazyFlush/4)
}

type flusher struct {
	c     *Chain
	mark  indexMark // the store's index mark (index.go); only run uses it
	wake  chan struct{}
	hurry chan struct{} // someone waits: write now
	quit  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	queue []*write
	err   error // the first store failure: nothing commits after it
	once  sync.Once
}

func startFlusher(c *Chain) *flusher {
	f := &flusher{c: c, mark: indexMark{to: c.indexedTo, top: c.top}, wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1), quit: make(chan struct{})}
	f.wg.Add(1)
	go f.run()
	return f
}

func (f *flusher) enqueue(w *write) {
	f.mu.Lock()
	f.queue = append(f.queue, w)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *flusher) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// stop writes what is queued and ends the flusher.
func (f *flusher) stop() error {
	f.once.Do(func() { close(f.quit) })
	f.wg.Wait()
	return f.failed()
}

// waiting asks for the queue to be written now: a caller waits for it.
func (f *flusher) waiting() {
	select {
	case f.hurry <- struct{}{}:
	default:
	}
}

func (f *flusher) run() {
	defer f.wg.Done()
	lazy := time.NewTimer(lazyFlush)
	lazy.Stop()
	for {
		select {
		case <-f.wake:
		case <-f.hurry:
		case <-f.quit:
			f.flush(true)
			return
		}
		f.mu.Lock()
		idle := len(f.queue) == 0
		f.mu.Unlock()
		if idle {
			continue // a wake-up for a batch already written
		}
		// Give later commits until lazyFlush to join the batch, unless
		// someone waits.
		lazy.Reset(lazyWait())
		select {
		case <-f.hurry:
		case <-lazy.C:
		case <-f.quit:
			lazy.Stop()
			f.flush(true)
			return
		}
		lazy.Stop()
		f.flush(false)
	}
}

// flush writes every queued commit in one transaction, and the waiting
// index entries if there are enough of them, or all of them if final
// (Close).
func (f *flusher) flush(final bool) {
	f.mu.Lock()
	batch := f.queue
	f.queue = nil
	failed := f.err
	f.mu.Unlock()
	if len(batch) == 0 && !(final && len(f.c.unindexed) > 0) {
		return
	}
	err := failed
	var deferred []*Block
	var indexed bool
	mark := f.mark
	if err == nil {
		err = f.c.db.Update(func(tx *bolt.Tx) error {
			deferred, mark = nil, f.mark
			for _, w := range batch {
				var err error
				if deferred, err = w.apply(tx, &mark, deferred); err != nil {
					return err
				}
			}
			var err error
			indexed, err = f.c.writeIndex(tx, deferred, mark.top, final)
			return err
		})
		if err != nil {
			err = fmt.Errorf("store blocks: %w", err)
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
		}
	}
	if err == nil {
		if indexed {
			mark.to = mark.top
		}
		f.mark = mark
		f.c.mu.Lock()
		f.c.flushed(batch, deferred, indexed)
		f.c.mu.Unlock()
	}
	for _, w := range batch {
		w.done.settle(err)
	}
}

// apply writes one commit: its blocks' bodies, their index entries (those
// above mark.to wait: appended to deferred, which it returns), line
// records, main-chain entries and head. A nil mark indexes every block at
// once. mark.top follows the highest block written.
func (w *write) apply(tx *bolt.Tx, mark *indexMark, deferred []*Block) ([]*Block, error) {
	for _, b := range w.blocks {
		if err := putBody(tx, b); err != nil {
			return nil, err
		}
		if mark != nil {
			mark.top = max(mark.top, b.Index)
			if b.Index > mark.to {
				deferred = append(deferred, b)
				continue
			}
		}
		if err := putIndex(tx, b); err != nil {
			return nil, err
		}
	}
	if err := putLines(tx, w.local, w.pending); err != nil {
		return nil, err
	}
	if w.branch == nil {
		return deferred, nil
	}
	// The main chain never gets shorter (fork choice prefers the longer
	// chain), so a reorg only overwrites heights.
	mb := tx.Bucket(bucketMain)
	mb.FillPercent = 0.95 // appended in height order
	for i, hash := range w.branch {
		if err := mb.Put(heightKey(w.fork+1+uint64(i)), hashKey(hash)); err != nil {
			return nil, err
		}
	}
	return deferred, tx.Bucket(bucketMeta).Put(keyHead, hashKey(w.head))
}

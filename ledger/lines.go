package ledger

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// A line typed on this node becomes a block; if a reorg later takes that
// block off the main chain, the line is pending until Reappend signs it
// again on the new head. The store remembers, for every block this node
// appended, which line it carries (bucket lines), and which lines are
// pending (bucket pending), both written in the transaction that changes the
// main chain: a crash at any moment loses no line, and a line is never
// appended twice while one of its blocks is on the main chain.
//
// Memory holds only the lines an ordinary reorg can still touch: those with
// a block near the head (within the finality depth, not yet settled, or not
// yet on disk) and the pending ones. A line with a block on the main chain
// below that is forgotten; the members' deep fork that takes it off the
// main chain reads its record back from the store first (deepfork.go).

// localLine is one block that carries a line typed on this node.
type localLine struct {
	hash   string // the block
	height uint64 // the block's index
	line   string // the line's ID: the hash of its first block
	seq    uint64 // the order lines were typed in
}

// lineBlock is one block of a line.
type lineBlock struct {
	hash   string
	height uint64
}

// lineBook tracks the lines typed on this node that a reorg can still
// touch. It is guarded by Chain.mu.
type lineBook struct {
	byBlock map[string]string      // block hash -> line ID
	blocks  map[string][]lineBlock // line ID -> every block that carried it
	seq     map[string]uint64      // line ID -> sequence
	pending map[string]bool        // lines with no block on the main chain
	order   []lineBlock            // blocks in byBlock, oldest first (pruning)
	last    uint64                 // highest sequence used
	dirty   map[string]bool        // lines whose pending state the next write records
}

func newLineBook() *lineBook {
	return &lineBook{byBlock: map[string]string{}, blocks: map[string][]lineBlock{}, seq: map[string]uint64{}, pending: map[string]bool{}, dirty: map[string]bool{}}
}

func (lb *lineBook) next() uint64 { return lb.last + 1 }

func (lb *lineBook) add(l localLine) {
	lb.byBlock[l.hash] = l.line
	lb.blocks[l.line] = append(lb.blocks[l.line], lineBlock{l.hash, l.height})
	lb.order = append(lb.order, lineBlock{l.hash, l.height})
	lb.seq[l.line] = l.seq
	lb.last = max(lb.last, l.seq)
	if lb.pending[l.line] {
		delete(lb.pending, l.line) // its new block is the head
		lb.dirty[l.line] = true
	}
}

// onMain reports whether any block of line is on the main chain.
func (lb *lineBook) onMain(line string, onMain func(lineBlock) bool) bool {
	return slices.ContainsFunc(lb.blocks[line], onMain)
}

// update follows a change of the main chain: dropped blocks left it, branch
// blocks joined it.
func (lb *lineBook) update(dropped, branch []string, onMain func(lineBlock) bool) {
	for _, h := range dropped {
		if line, ok := lb.byBlock[h]; ok && !lb.pending[line] && !lb.onMain(line, onMain) {
			lb.pending[line] = true
			lb.dirty[line] = true
		}
	}
	for _, h := range branch {
		if line, ok := lb.byBlock[h]; ok && lb.pending[line] {
			delete(lb.pending, line)
			lb.dirty[line] = true
		}
	}
}

// prune forgets the blocks at or below height safe (settled and deeper than
// the finality depth: no reorg can move them any more). A line with such a
// block on the main chain is on it for good and is forgotten whole.
func (lb *lineBook) prune(safe uint64, onMain func(lineBlock) bool) {
	n := 0
	for n < len(lb.order) && lb.order[n].height <= safe {
		b := lb.order[n]
		n++
		line, ok := lb.byBlock[b.hash]
		if !ok {
			continue
		}
		if lb.pending[line] || !onMain(b) {
			continue // kept while pending; or its other block decides
		}
		for _, ob := range lb.blocks[line] {
			delete(lb.byBlock, ob.hash)
		}
		delete(lb.blocks, line)
		delete(lb.seq, line)
	}
	if n > 0 {
		lb.order = slices.Delete(lb.order, 0, n)
	}
}

// ordered returns the pending lines in the order they were typed.
func (lb *lineBook) ordered() []string {
	out := make([]string, 0, len(lb.pending))
	for line := range lb.pending {
		out = append(out, line)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(lb.seq[a], lb.seq[b]) })
	return out
}

// load reads the pending lines and the line records above height from,
// the blocks a reorg can reach after a restart.
func (lb *lineBook) load(tx *bolt.Tx, from uint64) error {
	if v := tx.Bucket(bucketMeta).Get(keySeq); len(v) == 8 {
		lb.last = binary.BigEndian.Uint64(v)
	}
	err := tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
		if len(k) != 32 || len(v) < 8+40 || (len(v)-8)%40 != 0 {
			return fmt.Errorf("%w: pending line record %x", ErrCorrupt, k)
		}
		line := hex.EncodeToString(k)
		lb.pending[line] = true
		lb.seq[line] = binary.BigEndian.Uint64(v)
		for rest := v[8:]; len(rest) > 0; rest = rest[40:] {
			b := lineBlock{hash: hex.EncodeToString(rest[8:40]), height: binary.BigEndian.Uint64(rest)}
			if _, ok := lb.byBlock[b.hash]; !ok {
				lb.byBlock[b.hash] = line
				lb.blocks[line] = append(lb.blocks[line], b)
				lb.order = append(lb.order, b)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return lb.loadRecords(tx, from)
}

// loadRecords reads the line records of blocks at height from and up that
// the book does not hold.
func (lb *lineBook) loadRecords(tx *bolt.Tx, from uint64) error {
	c := tx.Bucket(bucketLines).Cursor()
	for k, v := c.Seek(heightKey(from)); k != nil; k, v = c.Next() {
		if len(k) != 40 || len(v) != 40 {
			return fmt.Errorf("%w: line record %x", ErrCorrupt, k)
		}
		l := localLine{hash: hex.EncodeToString(k[8:]), height: binary.BigEndian.Uint64(k), line: hex.EncodeToString(v[:32]), seq: binary.BigEndian.Uint64(v[32:])}
		if _, ok := lb.byBlock[l.hash]; ok {
			continue // a pending line's block, loaded above
		}
		lb.byBlock[l.hash] = l.line
		lb.blocks[l.line] = append(lb.blocks[l.line], lineBlock{l.hash, l.height})
		lb.order = append(lb.order, lineBlock{l.hash, l.height})
		lb.seq[l.line] = l.seq
	}
	return nil
}

// pendingRecord is the pending bucket's value for line, nil if the line is
// not pending.
func (lb *lineBook) pendingRecord(line string) []byte {
	if !lb.pending[line] {
		return nil
	}
	v := binary.BigEndian.AppendUint64(nil, lb.seq[line])
	for _, b := range lb.blocks[line] {
		v = append(v, bodyKey(b.height, b.hash)...)
	}
	return v
}

// takeDirty returns the pending-bucket changes since the last call.
func (lb *lineBook) takeDirty() map[string][]byte {
	if len(lb.dirty) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(lb.dirty))
	for line := range lb.dirty {
		out[line] = lb.pendingRecord(line)
	}
	clear(lb.dirty)
	return out
}

func putLines(tx *bolt.Tx, ls []localLine, pending map[string][]byte) error {
	b := tx.Bucket(bucketLines)
	var last uint64
	for _, l := range ls {
		v := binary.BigEndian.AppendUint64(hashKey(l.line), l.seq)
		if err := b.Put(bodyKey(l.height, l.hash), v); err != nil {
			return err
		}
		last = max(last, l.seq)
	}
	if last > 0 {
		if err := tx.Bucket(bucketMeta).Put(keySeq, heightKey(last)); err != nil {
			return err
		}
	}
	pb := tx.Bucket(bucketPending)
	for line, v := range pending {
		var err error
		if v == nil {
			err = pb.Delete(hashKey(line))
		} else {
			err = pb.Put(hashKey(line), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PendingLines returns how many lines typed on this node are waiting to be
// appended again because a reorg took their blocks off the main chain.
func (c *Chain) PendingLines() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.lines.pending)
}

// Reappend signs up to max pending lines again, in the order they were
// typed, as a run of new blocks on the head, and stores them in one
// transaction. It returns the new blocks (none if no line is pending).
//
// Like Append, the blocks can be published at once; Result.Wait returns
// when they are on disk.
func (c *Chain) Reappend(s *Signer, max int) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Result{}, ErrClosed
	}
	pending := c.lines.ordered()
	pending = pending[:min(len(pending), max)]
	if len(pending) == 0 {
		return Result{Head: c.head}, nil
	}
	r := c.reader()
	defer r.done()
	var blocks []*Block
	var local []localLine
	parent := c.head
	for _, line := range pending {
		first := c.lines.blocks[line][0]
		old, err := r.block(first.height, first.hash)
		if err != nil {
			return Result{}, err
		}
		b, err := c.signOn(s, parent, old.Data)
		if err != nil {
			return Result{}, err
		}
		blocks = append(blocks, b)
		local = append(local, localLine{hash: b.Hash, height: b.Index, line: line, seq: c.lines.seq[line]})
		parent = b
	}
	return c.commit(r, blocks, local)
}

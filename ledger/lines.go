package ledger

import (
	"bytes"
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
// appended, which line it carries:
//
//	lines  32-byte block hash -> 32-byte line ID (the hash of the line's
//	                             first block) + 8-byte big-endian sequence
//
// A line is pending exactly when none of its blocks is on the main chain, so
// the pending set is derived from the store, not written to it: a crash at
// any moment loses no line, and a line is never appended twice while one of
// its blocks is on the main chain.
var bucketLines = []byte("lines")

// localLine is one block that carries a line typed on this node.
type localLine struct {
	hash string // the block
	line string // the line's ID: the hash of its first block
	seq  uint64 // the order lines were typed in
}

// lineBook tracks the lines typed on this node. It is guarded by Chain.mu.
type lineBook struct {
	byBlock map[string]string   // block hash -> line ID
	blocks  map[string][]string // line ID -> every block that carried it
	seq     map[string]uint64   // line ID -> sequence
	pending map[string]bool     // lines with no block on the main chain
	last    uint64              // highest sequence used
}

func newLineBook() *lineBook {
	return &lineBook{byBlock: map[string]string{}, blocks: map[string][]string{}, seq: map[string]uint64{}, pending: map[string]bool{}}
}

func (lb *lineBook) next() uint64 { return lb.last + 1 }

func (lb *lineBook) add(l localLine) {
	lb.byBlock[l.hash] = l.line
	lb.blocks[l.line] = append(lb.blocks[l.line], l.hash)
	lb.seq[l.line] = l.seq
	lb.last = max(lb.last, l.seq)
	delete(lb.pending, l.line) // its new block is the head
}

// onMain reports whether any block of line is on the main chain.
func (lb *lineBook) onMain(line string, onMain func(string) bool) bool {
	return slices.ContainsFunc(lb.blocks[line], onMain)
}

// update follows a change of the main chain: dropped blocks left it, branch
// blocks joined it.
func (lb *lineBook) update(dropped, branch []string, onMain func(string) bool) {
	for _, h := range dropped {
		if line, ok := lb.byBlock[h]; ok && !lb.onMain(line, onMain) {
			lb.pending[line] = true
		}
	}
	for _, h := range branch {
		if line, ok := lb.byBlock[h]; ok {
			delete(lb.pending, line)
		}
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

func (lb *lineBook) load(tx *bolt.Tx, known map[string]uint64, onMain func(string) bool) error {
	err := tx.Bucket(bucketLines).ForEach(func(k, v []byte) error {
		if len(k) != 32 || len(v) != 40 {
			return fmt.Errorf("%w: line record %x", ErrCorrupt, k)
		}
		hash := hex.EncodeToString(k)
		if _, ok := known[hash]; !ok {
			return fmt.Errorf("%w: line record names missing block %s", ErrCorrupt, short(hash))
		}
		lb.add(localLine{hash: hash, line: hex.EncodeToString(v[:32]), seq: binary.BigEndian.Uint64(v[32:])})
		return nil
	})
	if err != nil {
		return err
	}
	for line := range lb.blocks {
		if !lb.onMain(line, onMain) {
			lb.pending[line] = true
		}
	}
	return nil
}

func putLines(tx *bolt.Tx, ls []localLine) error {
	b := tx.Bucket(bucketLines)
	for _, l := range ls {
		v := binary.BigEndian.AppendUint64(bytes.Clone(hashKey(l.line)), l.seq)
		if err := b.Put(hashKey(l.hash), v); err != nil {
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
	var blocks []*Block
	var local []localLine
	err := c.db.View(func(tx *bolt.Tx) error {
		parent := c.head
		for _, line := range pending {
			first := c.lines.blocks[line][0]
			old, ok := c.unsynced[first]
			if !ok {
				var err error
				if old, err = getBlock(tx, first); err != nil {
					return err
				}
			}
			b, err := c.signOn(s, parent, old.Data)
			if err != nil {
				return err
			}
			blocks = append(blocks, b)
			local = append(local, localLine{hash: b.Hash, line: line, seq: c.lines.seq[line]})
			parent = b
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return c.commit(blocks, local)
}

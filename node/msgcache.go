package node

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// messageKeep is how many message IDs a node remembers (in each of two
// generations).
const messageKeep = 4096

// messageIDs remembers the IDs of recent gossip messages by the SHA-256 of
// their bytes. GossipSub names every copy of a message that arrives (each
// block comes from several peers, and flood publishing sends an author's
// block to all of them) on its single event loop, before it knows the copy
// is a duplicate; naming means decoding and hashing the block
// (protocol.MessageID). Remembering the answer keeps that loop at one
// SHA-256 per copy.
//
// Two generations of at most messageKeep entries bound it: when the
// current one fills it becomes the previous one and the oldest is dropped.
//
// The block a new message decoded to while it was named waits, by ID, for
// the validator to take it (one decode per block, not two); at most
// decodedKeep, with decodedBytes of data, wait (more start the set over:
// the validator then decodes). That is GossipSub's validation queue's
// worth of gossipchain-sized blocks: in a burst of 3,000 on 10 nodes a
// bound of 1,024 overflowed, and the blocks it forgot were no longer
// pending for their children, held as orphans by the hundred.
// An ID names exactly one block, field for field (protocol.MessageID), so
// the block taken is the one the message holds. From the moment it is
// named until its check ends the block is pending (pending.go), so a child
// checked before it waits for it.
type messageIDs struct {
	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]string
	invalid   map[[sha256.Size]byte]bool // messages found invalid: their copies are not dropped early
	decoded   map[string]named
	fresh     []string // IDs in decoded in the order named, not yet taken ahead (some gone since)
	data      int      // bytes of data in decoded
	pending   *pendingBlocks
}

// named is a decoded block waiting for the validator, and what ends its
// pending entry. checked is set once a validator has taken the block into
// a batch it checks ahead (validate_blocks.go), and closed when it is done.
type named struct {
	block   *ledger.Block
	end     func()
	checked chan struct{}
	at      time.Time // when GossipSub named it: the message had arrived
}

// decodedKeep and decodedBytes bound the decoded blocks waiting for the
// validator, and their data.
const (
	decodedKeep  = validateQueue
	decodedBytes = 8 << 20
)

func newMessageIDs(pending *pendingBlocks) *messageIDs {
	return &messageIDs{cur: map[[sha256.Size]byte]string{}, prev: map[[sha256.Size]byte]string{}, decoded: map[string]named{}, pending: pending}
}

// take returns the block the message with id decoded to, once, with the
// func that ends its pending entry.
func (m *messageIDs) take(id string) (named, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.decoded[id]
	if ok {
		delete(m.decoded, id)
		m.data -= len(d.block.Data)
	}
	return d, ok
}

// ahead returns up to limit decoded blocks waiting for the validator that
// no one has taken to check ahead, marked as taken; done, called once they
// are checked, releases validators waiting for them.
func (m *messageIDs) ahead(limit int) (bs []*ledger.Block, done func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ch chan struct{}
	for len(bs) < limit && len(m.fresh) > 0 {
		id := m.fresh[0]
		m.fresh = m.fresh[1:]
		d, ok := m.decoded[id]
		if !ok || d.checked != nil {
			continue // taken by its validator meanwhile
		}
		if ch == nil {
			ch = make(chan struct{})
		}
		d.checked = ch
		m.decoded[id] = d
		bs = append(bs, d.block)
	}
	if ch == nil {
		return nil, func() {}
	}
	return bs, func() { close(ch) }
}

// id returns protocol.MessageID(data), from memory when data was seen
// lately.
func (m *messageIDs) id(data []byte) string {
	key := sha256.Sum256(data)
	m.mu.Lock()
	id, ok := m.cur[key]
	if !ok {
		id, ok = m.prev[key]
	}
	m.mu.Unlock()
	if ok {
		return id
	}
	id, b := protocol.DecodeMessage(data)
	m.remember(key, id)
	if b != nil {
		end, at := m.pending.begin(b.Hash), time.Now()
		m.mu.Lock()
		if len(m.decoded) >= decodedKeep || m.data+len(b.Data) > decodedBytes {
			for _, d := range m.decoded {
				d.end()
			}
			clear(m.decoded)
			m.fresh, m.data = nil, 0
		}
		if old, ok := m.decoded[id]; ok {
			old.end()
			m.data -= len(old.block.Data)
		}
		m.decoded[id] = named{block: b, end: end, at: at}
		if len(m.fresh) >= 2*decodedKeep { // mostly taken by validators since
			m.fresh = slices.DeleteFunc(m.fresh, func(id string) bool { d, ok := m.decoded[id]; return !ok || d.checked != nil })
		}
		m.fresh = append(m.fresh, id)
		m.data += len(b.Data)
		m.mu.Unlock()
	}
	return id
}

// published remembers the ID of a message this node is about to publish,
// so naming it does not decode it.
func (m *messageIDs) published(data []byte, b *ledger.Block) {
	if id, ok := protocol.BlockID(b); ok {
		m.remember(sha256.Sum256(data), id)
	}
}

// copyOf returns the ID of the message data holds if this node has named
// that message already and not found it invalid: data is another copy of
// it, and can go unread (copies.go).
func (m *messageIDs) copyOf(data []byte) (string, bool) {
	key := sha256.Sum256(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.invalid[key] {
		return "", false
	}
	id, ok := m.cur[key]
	if !ok {
		id, ok = m.prev[key]
	}
	return id, ok
}

// unread notes that GossipSub named the message data holds but dropped it
// unread (its validation queue was full): its next copy is read.
func (m *messageIDs) unread(data []byte) {
	key := sha256.Sum256(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cur, key)
	delete(m.prev, key)
}

// rejected notes that the message data holds was found invalid: its
// copies are read, so GossipSub penalises their senders too (at most
// messageKeep such messages are remembered).
func (m *messageIDs) rejected(data []byte) {
	key := sha256.Sum256(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.invalid == nil || len(m.invalid) >= messageKeep {
		m.invalid = map[[sha256.Size]byte]bool{}
	}
	m.invalid[key] = true
}

func (m *messageIDs) remember(key [sha256.Size]byte, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= messageKeep {
		m.prev, m.cur = m.cur, make(map[[sha256.Size]byte]string, messageKeep)
	}
	m.cur[key] = id
}

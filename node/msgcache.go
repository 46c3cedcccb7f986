package node

import (
	"crypto/sha256"
	"sync"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// messageKeep is how many decoded gossip messages a node remembers (in each
// of two generations).
const messageKeep = 4096

// messages remembers recently decoded gossip messages by the SHA-256 of
// their bytes. GossipSub names every copy of a message that arrives (each
// block comes from several peers) on its single event loop, before it knows
// the copy is a duplicate, and the validator then needs the block again:
// decoding it once and hashing its bytes for the rest keeps that loop
// fast. Decoding is deterministic, so a remembered answer is the answer.
// Once the validator has the block, only the ID is kept.
//
// Two generations of at most messageKeep entries bound it: when the
// current one fills it becomes the previous one and the oldest is dropped.
type messages struct {
	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]decoded
}

// decoded is a gossip message's block (nil if it is not one, with err) and
// message ID (protocol.MessageID).
type decoded struct {
	block *ledger.Block
	id    string
	err   error
	slim  bool // the block was handed to the validator and forgotten
}

func newMessages() *messages {
	return &messages{cur: map[[sha256.Size]byte]decoded{}, prev: map[[sha256.Size]byte]decoded{}}
}

// id returns data's message ID, from memory when data was seen lately.
func (m *messages) id(data []byte) string {
	return m.lookup(data, false).id
}

// decode returns what protocol.DecodeMessage returns for data, and keeps
// only the ID in memory: the validator is the block's last reader (later
// copies are named, not validated again).
func (m *messages) decode(data []byte) decoded {
	return m.lookup(data, true)
}

func (m *messages) lookup(data []byte, validating bool) decoded {
	key := sha256.Sum256(data)
	m.mu.Lock()
	d, ok := m.cur[key]
	if !ok {
		d, ok = m.prev[key]
	}
	if ok && validating {
		// Drop the block from memory (in the newest generation; an old
		// entry ages out).
		if _, cur := m.cur[key]; cur {
			m.cur[key] = decoded{id: d.id, err: d.err, slim: true}
		}
	}
	m.mu.Unlock()
	if ok && !(validating && d.slim) {
		return d
	}
	d.block, d.id, d.err = protocol.DecodeMessage(data)
	if validating {
		m.remember(key, decoded{id: d.id, err: d.err, slim: true})
	} else {
		m.remember(key, d)
	}
	return d
}

// published remembers the ID of a message this node is about to publish,
// so naming it does not decode it (its validation needs no decoding).
func (m *messages) published(data []byte, b *ledger.Block) {
	if id, ok := protocol.BlockID(b); ok {
		m.remember(sha256.Sum256(data), decoded{id: id, slim: true})
	}
}

func (m *messages) remember(key [sha256.Size]byte, d decoded) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= messageKeep {
		m.prev, m.cur = m.cur, make(map[[sha256.Size]byte]decoded, messageKeep)
	}
	m.cur[key] = d
}

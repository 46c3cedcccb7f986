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
}

func newMessages() *messages {
	return &messages{cur: map[[sha256.Size]byte]decoded{}, prev: map[[sha256.Size]byte]decoded{}}
}

// decode returns what protocol.DecodeMessage returns for data, from memory
// when data was seen lately.
func (m *messages) decode(data []byte) decoded {
	key := sha256.Sum256(data)
	m.mu.Lock()
	d, ok := m.cur[key]
	if !ok {
		d, ok = m.prev[key]
	}
	m.mu.Unlock()
	if ok {
		return d
	}
	d.block, d.id, d.err = protocol.DecodeMessage(data)
	m.remember(key, d)
	return d
}

// published remembers a message this node is about to publish, so naming
// it does not decode it again.
func (m *messages) published(data []byte, b *ledger.Block) {
	if id, ok := protocol.BlockID(b); ok {
		m.remember(sha256.Sum256(data), decoded{block: b, id: id})
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

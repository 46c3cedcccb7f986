package node

import (
	"crypto/sha256"
	"sync"

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
// SHA-256 per copy. Only IDs are kept, never blocks, so a flood of
// messages waiting for validation costs no extra memory here.
//
// Two generations of at most messageKeep entries bound it: when the
// current one fills it becomes the previous one and the oldest is dropped.
type messageIDs struct {
	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]string
}

func newMessageIDs() *messageIDs {
	return &messageIDs{cur: map[[sha256.Size]byte]string{}, prev: map[[sha256.Size]byte]string{}}
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
	id = protocol.MessageID(data)
	m.remember(key, id)
	return id
}

// published remembers the ID of a message this node is about to publish,
// so naming it does not decode it.
func (m *messageIDs) published(data []byte, b *ledger.Block) {
	if id, ok := protocol.BlockID(b); ok {
		m.remember(sha256.Sum256(data), id)
	}
}

func (m *messageIDs) remember(key [sha256.Size]byte, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= messageKeep {
		m.prev, m.cur = m.cur, make(map[[sha256.Size]byte]string, messageKeep)
	}
	m.cur[key] = id
}

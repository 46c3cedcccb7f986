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
//
// The block a new message decoded to while it was named waits, by ID, for
// the validator to take it (one decode per block, not two); at most
// decodedKeep wait (more start the set over: the validator then decodes).
// An ID names exactly one block, field for field (protocol.MessageID), so
// the block taken is the one the message holds. From the moment it is
// named until its check ends the block is pending (pending.go), so a child
// checked before it waits for it.
type messageIDs struct {
	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]string
	decoded   map[string]named
	pending   *pendingBlocks
}

// named is a decoded block waiting for the validator, and what ends its
// pending entry.
type named struct {
	block *ledger.Block
	end   func()
}

// decodedKeep bounds the decoded blocks waiting for the validator.
const decodedKeep = 1024

func newMessageIDs(pending *pendingBlocks) *messageIDs {
	return &messageIDs{cur: map[[sha256.Size]byte]string{}, prev: map[[sha256.Size]byte]string{}, decoded: map[string]named{}, pending: pending}
}

// take returns the block the message with id decoded to, once, and the
// func that ends its pending entry.
func (m *messageIDs) take(id string) (*ledger.Block, func(), bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.decoded[id]
	if ok {
		delete(m.decoded, id)
	}
	return d.block, d.end, ok
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
		end := m.pending.begin(b.Hash)
		m.mu.Lock()
		if len(m.decoded) >= decodedKeep {
			for _, d := range m.decoded {
				d.end()
			}
			clear(m.decoded)
		}
		if old, ok := m.decoded[id]; ok {
			old.end()
		}
		m.decoded[id] = named{b, end}
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

func (m *messageIDs) remember(key [sha256.Size]byte, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= messageKeep {
		m.prev, m.cur = m.cur, make(map[[sha256.Size]byte]string, messageKeep)
	}
	m.cur[key] = id
}

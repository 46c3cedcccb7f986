package chainsync

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// What the syncer knows of each peer: the head it last reported, whether it
// is banned from sync, whether it is a member (it gave a status with this
// node's genesis), and when its gossip was last rejected. Sync, discovery
// and the node's peer scoring all judge peers by it.

// ban keeps a peer out of sync for a while; a peer that proved itself
// faulty is also penalised in its GossipSub score.
type ban struct {
	until time.Time
	fault bool
	// stalled: the peer's answer stopped coming, which a dead link does
	// too. It is not a fault, and a new connection lifts it.
	stalled bool
}

// noteHead records what p says its head is, and wakes the sync loop if it is
// better than ours. A peer with another genesis is disconnected.
func (s *Syncer) noteHead(p peer.ID, st protocol.Status) {
	if st.Genesis != s.genesis {
		s.mu.Lock()
		_, known := s.banned[p]
		s.banned[p] = ban{until: s.deps.Now().Add(banFor), fault: true}
		s.mu.Unlock()
		if !known {
			s.deps.Log.Warn("peer is on another network (different genesis); disconnecting", "peer", p, "genesis", st.Genesis)
		}
		s.deps.Drop("sync_other_genesis")
		s.deps.Host.Network().ClosePeer(p)
		return
	}
	s.mu.Lock()
	s.heads[p] = st
	if s.deps.Host.Network().Connectedness(p) == network.Connected {
		s.members[p] = true
	}
	s.mu.Unlock()
	head := s.deps.Chain.Head()
	if st.Better(head.Index, head.Hash) {
		s.wake()
	}
}

// Saw records that p relayed block b: its head is at least b.
func (s *Syncer) Saw(p peer.ID, b *ledger.Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.heads[p]; !ok || (protocol.Status{Height: b.Index, Head: b.Hash}).Better(cur.Height, cur.Head) {
		s.heads[p] = protocol.Status{Genesis: s.genesis, Height: b.Index, Head: b.Hash}
	}
}

// Head returns the head p last reported (a status exchange, or a block it
// relayed), if any.
func (s *Syncer) Head(p peer.ID) (protocol.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.heads[p]
	return st, ok
}

// Faulty reports whether p is banned from sync for bad sync data.
func (s *Syncer) Faulty(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.banned[p]
	return ok && b.fault && s.deps.Now().Before(b.until)
}

// pruneBans forgets bans that have run out (pick forgets those of peers it
// considers; this is for the peers that left).
func (s *Syncer) pruneBans() {
	now := s.deps.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, b := range s.banned {
		if !now.Before(b.until) {
			delete(s.banned, p)
		}
	}
}

// trusted reports whether this node has no reason to distrust p: its
// GossipSub score (if it has one yet) is not below zero, it is not banned
// from sync, and none of its gossip was rejected in the last distrustFor.
func (s *Syncer) trusted(p peer.ID) bool {
	if score, ok := s.deps.Score(p); ok && score < 0 {
		return false
	}
	now := s.deps.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.banned[p]; ok && now.Before(b.until) {
		return false
	}
	if at, ok := s.rejected[p]; ok && now.Sub(at) < distrustFor {
		return false
	}
	return true
}

// member reports whether p, connected, gave this node a status with its
// genesis.
func (s *Syncer) member(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[p]
}

// RejectedFrom notes that p sent gossip this node rejected: for
// distrustFor, discovery neither names p to others nor dials it.
func (s *Syncer) RejectedFrom(p peer.ID) {
	now := s.deps.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rejected[p]; !ok && len(s.rejected) >= maxRejected {
		for k, at := range s.rejected {
			if now.Sub(at) >= distrustFor {
				delete(s.rejected, k)
			}
		}
		if len(s.rejected) >= maxRejected {
			return // every entry is fresh: the peers known are distrusted still
		}
	}
	s.rejected[p] = now
}

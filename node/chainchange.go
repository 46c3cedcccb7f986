package node

import (
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
)

// A change is what one call into the ledger did to the chain, and where
// its blocks came from. Every source of blocks (a typed or posted line, a
// re-appended line, gossip, sync) hands its result to Node.changed, and
// everything that follows a change subscribes there (New lists them): a
// new source of blocks touches one place, and no reaction is forgotten.
type change struct {
	res ledger.Result
	// origin is OriginLocal, OriginGossip or OriginSync.
	origin string
	// from is the peer that sent the blocks; "" for blocks made here.
	from peer.ID
	// msg and stages are the gossip message that carried res.Added[0],
	// and when it reached each stage of its validation (gossip only): the
	// trace ties the message's sends to the block.
	msg    *pubsub.Message
	stages *stages
}

// changed tells every subscriber of a chain change about it, in order.
// It runs on the caller's goroutine (a validation worker, the syncer, a
// poster), so subscribers only record, count or hand work on.
func (n *Node) changed(c change) {
	if len(c.res.Added) == 0 {
		return
	}
	for _, on := range n.onChange {
		on(c)
	}
}

// traceChange records how the blocks reached this node (propagation.go).
func (n *Node) traceChange(c change) {
	if c.origin == OriginGossip {
		n.traces.gossiped(c.res.Added[0], c.msg, c.from, c.stages)
		return
	}
	n.traces.added(c.res.Added, c.from, c.origin)
}

// countChange updates the metrics: blocks added by origin, reorgs, and how
// long gossiped blocks took to get here (every block stored by a message:
// the block, and held orphans it connected, which arrived by gossip too).
func (n *Node) countChange(c change) {
	n.metrics.blocksAdded.WithLabelValues(c.origin).Add(float64(len(c.res.Added)))
	if c.res.Reorg {
		n.metrics.reorged(c.res.Dropped)
	}
	if c.origin == OriginGossip {
		now := n.cfg.Clock()
		for _, b := range c.res.Added {
			n.metrics.propagation.Observe(max(0, now.Sub(b.Time()).Seconds()))
		}
	}
}

// announceChange publishes the blocks and the new head as events (the
// console, GET /events). A long sync is announced by its head (and "sync"
// progress), not block by block.
func (n *Node) announceChange(c change) {
	if c.origin != OriginSync || len(c.res.Added) <= maxSyncBlockEvents {
		from := n.peerNames.of(c.from)
		for _, b := range c.res.Added {
			n.events.publish(Event{Type: "block", Block: b, Origin: c.origin, From: from})
		}
	}
	if c.res.HeadChanged {
		n.events.publish(Event{Type: "head", Height: c.res.Head.Index, Head: c.res.Head.Hash})
	}
}

// syncChange tells the syncer. A head moved by gossip is news its peers are
// getting the same way; one moved here (typed, synced, re-appended) is
// worth a head exchange soon, so a peer left behind is noticed. A peer that
// relayed a block has at least that head.
func (n *Node) syncChange(c change) {
	if c.res.HeadChanged {
		if c.origin == OriginGossip {
			n.sync.GossipMoved()
		} else {
			n.sync.HeadMoved()
		}
	}
	if c.origin == OriginGossip {
		n.sync.Saw(c.from, c.res.Added[0])
	}
}

// reappendChange wakes the re-append loop after a reorg: lines typed here
// may have left the main chain (reappend.go).
func (n *Node) reappendChange(c change) {
	if c.res.Reorg {
		n.wakeReappend()
	}
}

// relayChange publishes the held orphans a gossiped block connected: they
// were ignored when they arrived, so GossipSub relayed none of them
// (publish.go relayConnected).
func (n *Node) relayChange(c change) {
	if c.origin != OriginGossip {
		return
	}
	for _, o := range c.res.Added[1:] {
		select {
		case n.republish <- o:
		default:
			n.log.Warn("relay queue full; connected block not relayed", "index", o.Index)
		}
	}
}

// peerNames remembers peers' text (base58, a few microseconds to make)
// for the block events: one per block on every node, from a handful of
// peers. It forgets them all at maxPeerNames.
type peerNames struct {
	mu    sync.Mutex
	names map[peer.ID]string
}

const maxPeerNames = 1024

// of is p's text, "" for none.
func (pn *peerNames) of(p peer.ID) string {
	if p == "" {
		return ""
	}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if s, ok := pn.names[p]; ok {
		return s
	}
	if pn.names == nil || len(pn.names) >= maxPeerNames {
		pn.names = map[peer.ID]string{}
	}
	s := p.String()
	pn.names[p] = s
	return s
}

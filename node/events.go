package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"

	"gossipchain/ledger"
)

// Event is one thing that happened to the node, as its followers see it:
// GET /events streams them to the dashboard, and the console prints them.
type Event struct {
	// Type is "block", "head", "peer", "sync", "reappend", "alone",
	// "refused" or "reachability".
	Type string `json:"type"`
	// Block, Origin (local, gossip, sync) and From (the peer that sent
	// it, if it came from one) describe a "block" event; Block a
	// "reappend" one: a line typed here, stored again after a reorg took
	// its earlier block off the main chain.
	Block  *ledger.Block `json:"block,omitempty"`
	Origin string        `json:"origin,omitempty"`
	From   string        `json:"from,omitempty"`
	// Height and Head describe a "head" event.
	Height uint64 `json:"height,omitempty"`
	Head   string `json:"head,omitempty"`
	// Peer and Connected describe a "peer" event.
	Peer      string `json:"peer,omitempty"`
	Connected bool   `json:"connected,omitempty"`
	// Sync describes a "sync" event: a sync of more than a few hundred
	// blocks starting, its progress, and the end of any sync that added
	// blocks (Done set).
	Sync *SyncProgress `json:"sync,omitempty"`
	// Alone describes an "alone" event: true when the last peer left,
	// false when one connected again after that.
	Alone bool `json:"alone,omitempty"`
	// Refused describes a "refused" event: a peer's branch this node will
	// not adopt, announced once per fork (refused.go).
	Refused *RefusedBranch `json:"refused,omitempty"`
	// Reachability describes a "reachability" event: public, private or
	// unknown (Status.Reachability).
	Reachability string `json:"reachability,omitempty"`
}

// Where a stored block came from (Event.Origin, and the origin label of
// gossipchain_blocks_added_total).
const (
	OriginLocal  = "local"  // appended here: typed, posted or re-appended
	OriginGossip = "gossip" // received by gossip
	OriginSync   = "sync"   // fetched by sync
)

// maxSyncBlockEvents is the largest sync batch announced block by block.
const maxSyncBlockEvents = 100

// eventQueue is how many events a subscriber may fall behind by; one
// further behind is dropped (a dashboard reconnects and reloads). A queue
// takes memory only while its subscriber is behind.
const eventQueue = 1024

// eventHub fans events out to subscribers (GET /events, the bench suite).
type eventHub struct {
	mu     sync.Mutex // guards subs and closed
	subs   map[*subscriber]struct{}
	closed bool
}

// subscriber is one follower of the hub: publish appends to its queue,
// and its pump hands the events to out in order (Subscribe), or its
// Follower reads the queue itself (Follow).
type subscriber struct {
	limit int // the most events it may fall behind by; 0: no bound

	out   chan Event    // unbuffered; closed when the pump ends
	ready chan struct{} // something was queued
	done  chan struct{} // closed when the subscription ends
	end   sync.Once

	mu    sync.Mutex // guards queue
	queue []Event
}

func newEventHub() *eventHub { return &eventHub{subs: map[*subscriber]struct{}{}} }

// subscribe returns a channel of events, closed when the hub closes or the
// subscriber falls more than limit events behind (0: never), and a
// function that unsubscribes. A goroutine (pump) hands the events over.
func (h *eventHub) subscribe(limit int) (<-chan Event, func()) {
	sub := h.add(limit)
	go sub.pump()
	return sub.out, func() { h.drop(sub) }
}

// add registers a subscriber that may fall limit events behind (0: no
// bound); one added to a closed hub has ended already.
func (h *eventHub) add(limit int) *subscriber {
	sub := &subscriber{limit: limit, out: make(chan Event), ready: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		sub.end.Do(func() { close(sub.done) })
		return sub
	}
	h.subs[sub] = struct{}{}
	return sub
}

func (h *eventHub) drop(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
	sub.end.Do(func() { close(sub.done) })
}

// pump delivers the queue in order until the subscription ends.
func (s *subscriber) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.queue = nil // a drained queue holds no memory
			s.mu.Unlock()
			select {
			case <-s.ready:
				continue
			case <-s.done:
				return
			}
		}
		e := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.out <- e:
		case <-s.done:
			return
		}
	}
}

func (h *eventHub) publish(e Event) {
	h.mu.Lock()
	var behind []*subscriber
	for sub := range h.subs {
		sub.mu.Lock()
		if sub.limit > 0 && len(sub.queue) >= sub.limit {
			behind = append(behind, sub)
		} else {
			sub.queue = append(sub.queue, e)
		}
		sub.mu.Unlock()
		select {
		case sub.ready <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
	for _, sub := range behind {
		h.drop(sub) // too far behind: let it reconnect
	}
}

func (h *eventHub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *eventHub) close() {
	h.mu.Lock()
	h.closed = true
	subs := h.subs
	h.subs = map[*subscriber]struct{}{}
	h.mu.Unlock()
	for sub := range subs {
		sub.end.Do(func() { close(sub.done) })
	}
}

// watchPeers publishes a "peer" event whenever a peer connects or its last
// connection closes, and notes when the node is left with no peer at all.
func (n *Node) watchPeers() network.Notifiee {
	nb := &network.NotifyBundle{
		ConnectedF: func(nw network.Network, c network.Conn) {
			if len(nw.ConnsToPeer(c.RemotePeer())) == 1 {
				n.events.publish(Event{Type: "peer", Peer: c.RemotePeer().String(), Connected: true})
			}
			if n.alone.CompareAndSwap(true, false) {
				n.log.Info("connected to a peer again", "peer", c.RemotePeer())
				n.events.publish(Event{Type: "alone", Alone: false})
			}
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			if nw.Connectedness(c.RemotePeer()) != network.Connected {
				n.events.publish(Event{Type: "peer", Peer: c.RemotePeer().String()})
			}
			if len(nw.Peers()) == 0 && n.ctx.Err() == nil && n.alone.CompareAndSwap(false, true) {
				n.log.Warn("no peer connected: blocks added here reach the others when one returns")
				n.events.publish(Event{Type: "alone", Alone: true})
			}
		},
	}
	n.host.Network().Notify(nb)
	return nb
}

// Subscribe follows the node's events for a client that may fall behind
// (GET /events serves them): the channel is closed when the node closes, or
// when the subscriber falls more than eventQueue events behind (a
// dashboard reconnects and reloads); cancel stops following.
func (n *Node) Subscribe() (<-chan Event, func()) { return n.events.subscribe(eventQueue) }

// Follow follows the node's events for a reader in this process that must
// see every one (the console): it is never dropped for falling behind, and
// what it has not read yet is held for it meanwhile.
func (n *Node) Follow() *Follower { return &Follower{hub: n.events, sub: n.events.add(0)} }

// Follower is one reader of every event, from Node.Follow. It reads the
// events queued for it a batch at a time, on its own goroutine: in a
// burst of blocks one wake-up and one write serve many events, where a
// channel would hand them over one by one through a second goroutine.
type Follower struct {
	hub *eventHub
	sub *subscriber
}

// Next waits for events and returns every one queued since the last call,
// in order. It returns nil once the follower has stopped, or the node has
// closed, and every event before that has been read.
func (f *Follower) Next() []Event {
	s := f.sub
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			return batch
		}
		select {
		case <-s.ready:
		case <-s.done:
			s.mu.Lock()
			batch, s.queue = s.queue, nil
			s.mu.Unlock()
			return batch // nil: nothing arrived since the last look
		}
	}
}

// Stop ends the following: Next returns what is left, then nil.
func (f *Follower) Stop() { f.hub.drop(f.sub) }

package chainsync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/node/internal/ratelimit"
	"gossipchain/protocol"
)

// Sync tuning.
const (
	// headCheckEvery is how often a node asks every peer for its head, so
	// nodes that disagree find out even if no block is gossiped (a healed
	// partition whose links never dropped).
	headCheckEvery = 3 * time.Second
	// banFor is how long a peer that sent bad sync data is not synced from.
	banFor = time.Minute
	// coolOff is how long a peer whose sync failed without proving it
	// faulty (it went away, it does not speak sync) is not synced from: a
	// peer sending orphans must not make this node retry it per message.
	coolOff = 2 * time.Second
	// progressMin is the sync size from which progress is reported.
	progressMin = 256
	// progressEvery spaces progress reports.
	progressEvery = 250 * time.Millisecond
	// recheckAfter is how soon after this node moves its own head (a line
	// typed, a sync, a re-append; not a block gossip brought, which its
	// peers are receiving too) it asks its peers for their heads again,
	// once per burst of moves, so a peer left behind is noticed.
	recheckAfter = 500 * time.Millisecond
	// gossipGrace is how long after gossip last moved this node's head a
	// peer that is ahead is left to gossip: during a burst every peer is a
	// few blocks ahead, and fetching what is already on its way would
	// spend bandwidth and CPU twice. Once gossip stalls (a lost block, a
	// late start, a healed partition), sync starts.
	gossipGrace = 500 * time.Millisecond
	// maxGossipDefer bounds how long gossipGrace can put a sync off.
	maxGossipDefer = 5 * time.Second
)

// Syncer keeps this node's chain level with its peers: it learns their heads
// (on every new connection, every headCheckEvery, and from gossiped blocks
// whose parent is unknown), fetches what it is missing from the best of them,
// and serves the same to them. It also answers and runs discovery
// (discovery.go), which shares its view of which peers are members and
// which are not to be trusted, and answers and asks trace requests.
//
// It is built from Deps alone, owns its goroutines (Start, Close), and
// refuses work after Close.
type Syncer struct {
	deps    Deps
	genesis string
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine the syncer starts

	mu       sync.Mutex // guards the fields below
	heads    map[peer.ID]protocol.Status
	banned   map[peer.ID]ban
	members  map[peer.ID]bool      // connected peers that gave a status with our genesis
	rejected map[peer.ID]time.Time // when a peer last sent gossip this node rejected
	progress *Progress
	limit    *ratelimit.Limiter // sync requests served, per peer

	recheck  debounce      // head re-check after our head moved
	grace    debounce      // sync once gossip has had its grace
	hold     gossipHold    // syncs put off while gossip moves the head
	kick     chan struct{} // something may be worth syncing
	discover *discovery    // finds more peers (discovery.go)
	ask      chan peer.ID  // peers to exchange status with
	serving  chan struct{} // semaphore of requests being served
	notify   network.Notifiee
}

// Deps is what the syncer needs from the rest of the node: the host and
// the chain, how to count and log, the author budget and the peers' scores,
// and what to do with what a sync brings.
type Deps struct {
	Host    host.Host
	Chain   Chain
	Log     *slog.Logger
	Timeout time.Duration // per request, and per frame of an answer
	// Now judges bans, cool-offs and the request rate limit (nil:
	// time.Now).
	Now func() time.Time
	// ConnLow is the connection manager's low water mark: a member lost
	// while this node has fewer connections was not trimmed by this node,
	// and discovery dials it again. DialTimeout bounds each dial
	// discovery makes.
	ConnLow     int
	DialTimeout time.Duration
	// TargetPeers is how many connections discovery looks for: 0 means
	// the package's TargetPeers, a negative number none (discovery dials
	// no peer another names, only lost members). Discovery applies the
	// default (newDiscovery).
	TargetPeers int

	Drop    func(reason string)           // count a drop (GET /status)
	Metrics Metrics                       // requests made and served
	Budget  Budget                        // applied to young blocks a sync brings
	Score   func(peer.ID) (float64, bool) // a peer's GossipSub score, if it has one
	// Dialing is how many configured peers are being dialled right now:
	// connections this node is about to have (discovery counts them).
	Dialing func() int

	// Added is told of every chain change a sync made, and whom from
	// (the node's one path for chain changes); Report of a sync's
	// progress and end; Relay of the new head a sync reached, for peers
	// that ignored its gossip while behind; Reappend that a sync ended,
	// so lines typed here that a reorg took off the main chain may be
	// re-appended now.
	Added func(ledger.Result, peer.ID)
	// Trace is this node's trace of a block, for a peer's trace request.
	Trace    func(hash string) (*protocol.Trace, bool)
	Report   func(Progress)
	Relay    func(*ledger.Block)
	Reappend func()
	// Refused is told of a peer's branch the chain would not adopt
	// (ledger.ErrTooDeep; ledger.Refused describes it); nil: nobody.
	Refused func(peer.ID, error)
}

// Chain is what the syncer needs of the chain: its head and locator to ask
// peers with, checking and storing what they send, and reading what they
// ask for.
type Chain interface {
	Head() *ledger.Block
	Height() uint64
	Locator() []string
	HasBlock(b *ledger.Block) bool
	Check(blocks ...*ledger.Block) *ledger.Checked
	Process(run *ledger.Checked) (ledger.Result, error)
	After(locator []string, maxBlocks, maxBytes int) (raw [][]byte, found bool, err error)
}

// Budget is the node's budget of new blocks: per author, per peer that
// brings them, and for authors new to the node. A sync applies it to the
// young blocks it brings, so a flood cannot enter by sync instead of
// gossip.
type Budget interface {
	// Young reports whether a block fetched by sync counts against the
	// budget.
	Young(b *ledger.Block) bool
	// Allow takes b's share of every budget it counts against, from being
	// the peer that sent it; if any has none left it takes none and
	// reports false with the budget's drop reason.
	Allow(b *ledger.Block, from peer.ID) (limit string, ok bool)
}

// Metrics counts sync requests by type (protocol.RequestStatus, ...): those
// made, by result ("ok", "error"), and those served.
type Metrics interface {
	RequestMade(kind, result string)
	RequestServed(kind string)
}

// New returns a syncer built from deps; Start starts it.
func New(deps Deps) *Syncer {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Syncer{
		deps: deps, genesis: ledger.Genesis().Hash,
		heads: map[peer.ID]protocol.Status{}, banned: map[peer.ID]ban{},
		members: map[peer.ID]bool{}, rejected: map[peer.ID]time.Time{},
		limit: ratelimit.New(protocol.SyncRequestsPerSecond, protocol.SyncRequestBurst, deps.Now),
		kick:  make(chan struct{}, 1), ask: make(chan peer.ID, 256), serving: make(chan struct{}, protocol.MaxSyncServing),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Start registers the protocol handler and connection notifications and
// starts the sync goroutines and discovery. A closed syncer stays closed.
func (s *Syncer) Start() {
	if s.ctx.Err() != nil {
		return
	}
	h := s.deps.Host
	s.discover = newDiscovery(discoveryDeps{
		host: h, log: s.deps.Log, askPeers: s.askPeers, member: s.member, trusted: s.trusted, dialing: s.deps.Dialing,
		connLow: s.deps.ConnLow, dialTimeout: s.deps.DialTimeout, target: s.deps.TargetPeers,
	})
	h.SetStreamHandler(protocol.SyncID, s.serve)
	s.notify = &network.NotifyBundle{
		ConnectedF: func(nw network.Network, c network.Conn) {
			s.mu.Lock()
			if b, ok := s.banned[c.RemotePeer()]; ok && b.stalled {
				delete(s.banned, c.RemotePeer()) // connected again: a fresh chance
			}
			s.mu.Unlock()
			s.askStatus(c.RemotePeer())
			if len(nw.Peers()) < s.discover.target {
				s.discover.poke()
			}
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			if nw.Connectedness(c.RemotePeer()) != network.Connected {
				s.mu.Lock()
				wasMember := s.members[c.RemotePeer()]
				delete(s.heads, c.RemotePeer())
				delete(s.members, c.RemotePeer())
				s.mu.Unlock()
				s.discover.disconnected(c.RemotePeer(), wasMember)
			}
		},
	}
	h.Network().Notify(s.notify)
	s.wg.Add(3)
	go s.run()
	go s.askLoop()
	go s.askLoop()
	s.discover.start()
}

// Close ends syncing, serving and discovery, and waits for the syncer's
// goroutines. A request served meanwhile is refused; so is every one after.
// It is safe to call more than once.
func (s *Syncer) Close() {
	s.cancel()
	s.deps.Host.RemoveStreamHandler(protocol.SyncID)
	if s.notify != nil {
		s.deps.Host.Network().StopNotify(s.notify)
	}
	s.recheck.stop()
	s.grace.stop()
	if s.discover != nil {
		s.discover.stop()
	}
	s.wg.Wait()
}

// HeadMoved schedules one head exchange with every peer shortly after this
// node's head moved (a line typed, a sync, a re-append); more moves
// meanwhile share it.
func (s *Syncer) HeadMoved() { s.recheck.after(recheckAfter, s.askAll) }

// GossipMoved notes that gossip just moved this node's head: a sync due
// now is put off while gossip keeps bringing the blocks (gossipGrace).
func (s *Syncer) GossipMoved() { s.hold.moved() }

// Hint records that p relayed block b, whose parent this node lacks: p's
// head is at least b, and worth syncing from.
func (s *Syncer) Hint(p peer.ID, b *ledger.Block) {
	s.Saw(p, b)
	s.wake()
}

func (s *Syncer) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wakeAfter wakes the sync loop after d (once, however often it is asked
// meanwhile).
func (s *Syncer) wakeAfter(d time.Duration) { s.grace.after(d, s.wake) }

// askStatus queues a status exchange with p; if the queue is full the
// periodic check will ask later.
func (s *Syncer) askStatus(p peer.ID) {
	select {
	case s.ask <- p:
	default:
	}
}

// askAll queues a status exchange with every connected peer.
func (s *Syncer) askAll() {
	for _, p := range s.deps.Host.Network().Peers() {
		s.askStatus(p)
	}
}

func (s *Syncer) askLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case p := <-s.ask:
			s.exchangeStatus(p)
		}
	}
}

// status is this node's own status.
func (s *Syncer) status() protocol.Status {
	head := s.deps.Chain.Head()
	return protocol.Status{Genesis: s.genesis, Height: head.Index, Head: head.Hash}
}

// run syncs from the best peer whenever one is ahead, and asks every peer
// for its head every headCheckEvery.
func (s *Syncer) run() {
	defer s.wg.Done()
	tick := time.NewTicker(headCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.pruneBans()
			s.askAll()
			continue
		case <-s.kick:
		}
		for s.ctx.Err() == nil {
			p, target, ok := s.pick()
			if !ok {
				s.hold.reset()
				break
			}
			if wait := s.hold.wait(); wait > 0 {
				s.wakeAfter(wait)
				break
			}
			s.syncFrom(p, target)
		}
		s.deps.Reappend()
	}
}

// pick returns the connected, unbanned peer with the best head, if that head
// is better than ours.
func (s *Syncer) pick() (peer.ID, protocol.Status, bool) {
	head := s.deps.Chain.Head()
	s.mu.Lock()
	defer s.mu.Unlock()
	var best peer.ID
	var bestSt protocol.Status
	for p, st := range s.heads {
		if b, ok := s.banned[p]; ok {
			if s.deps.Now().Before(b.until) {
				continue
			}
			delete(s.banned, p)
		}
		if !st.Better(head.Index, head.Hash) || s.deps.Host.Network().Connectedness(p) != network.Connected {
			continue
		}
		if best == "" || st.Better(bestSt.Height, bestSt.Head) {
			best, bestSt = p, st
		}
	}
	return best, bestSt, best != ""
}

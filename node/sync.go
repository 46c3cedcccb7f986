package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

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

// SyncProgress describes a sync in progress (or just finished).
type SyncProgress struct {
	Peer   peer.ID `json:"peer"`
	From   uint64  `json:"from"`   // height when the sync started
	Height uint64  `json:"height"` // height now
	Target uint64  `json:"target"` // the peer's height
	// Done is set on the last report of a sync.
	Done    bool          `json:"done,omitempty"`
	Elapsed time.Duration `json:"-"`
}

// ban keeps a peer out of sync for a while; a peer that proved itself
// faulty is also penalised in its GossipSub score.
type ban struct {
	until time.Time
	fault bool
}

// syncer keeps this node's chain level with its peers: it learns their heads
// (on every new connection, every headCheckEvery, and from gossiped blocks
// whose parent is unknown), fetches what it is missing from the best of them,
// and serves the same to them. It also answers and runs discovery
// (discovery.go), which shares its view of which peers are members and
// which are not to be trusted.
//
// It is built from syncDeps alone, owns its goroutines (start, stop), and
// refuses work after stop: a component test runs it on two bare hosts and
// two chains, without a Node.
type syncer struct {
	syncDeps
	genesis string
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine the syncer starts

	mu       sync.Mutex // guards the fields below
	heads    map[peer.ID]protocol.Status
	banned   map[peer.ID]ban
	members  map[peer.ID]bool      // connected peers that gave a status with our genesis
	rejected map[peer.ID]time.Time // when a peer last sent gossip this node rejected
	progress *SyncProgress
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

// syncDeps is what the syncer needs from the rest of the node: the host and
// the chain, how to count and log, the author budget and the peers' scores,
// and what to do with what a sync brings.
type syncDeps struct {
	host    host.Host
	chain   *ledger.Chain
	log     *slog.Logger
	timeout time.Duration // per request, and per frame of an answer
	// now judges bans, cool-offs and the request rate limit (nil:
	// time.Now); tests set it.
	now func() time.Time

	drop         func(reason string)           // count a drop (GET /status)
	made, served *prometheus.CounterVec        // requests made (type, result), served (type)
	budget       *authorBudget                 // applied to young blocks a sync brings
	score        func(peer.ID) (float64, bool) // a peer's GossipSub score, if it has one
	dialing      func() int                    // configured peers being dialled (discovery counts them)

	// added is told of every chain change a sync made, and whom from
	// (the node's one path for chain changes: chainchange.go); report of
	// a sync's progress and end; relay of the new head a sync reached,
	// for peers that ignored its gossip while behind; reappend that a
	// sync ended, so lines typed here that a reorg took off the main
	// chain may be re-appended now.
	added func(ledger.Result, peer.ID)
	// trace is this node's trace of a block, for a peer's trace request.
	trace    func(hash string) (*protocol.Trace, bool)
	report   func(SyncProgress)
	relay    func(*ledger.Block)
	reappend func()
}

func newSyncer(deps syncDeps) *syncer {
	if deps.now == nil {
		deps.now = time.Now
	}
	s := &syncer{
		syncDeps: deps, genesis: ledger.Genesis().Hash,
		heads: map[peer.ID]protocol.Status{}, banned: map[peer.ID]ban{},
		members: map[peer.ID]bool{}, rejected: map[peer.ID]time.Time{},
		limit: ratelimit.New(protocol.SyncRequestsPerSecond, protocol.SyncRequestBurst, deps.now),
		kick:  make(chan struct{}, 1), ask: make(chan peer.ID, 256), serving: make(chan struct{}, protocol.MaxSyncServing),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// start registers the protocol handler and connection notifications and
// starts the sync goroutines and discovery.
func (s *syncer) start() {
	h := s.host
	s.discover = newDiscovery(discoveryDeps{
		host: h, log: s.log, askPeers: s.askPeers, member: s.member, trusted: s.trusted, dialing: s.dialing,
	})
	h.SetStreamHandler(protocol.SyncID, s.serve)
	s.notify = &network.NotifyBundle{
		ConnectedF: func(nw network.Network, c network.Conn) {
			s.askStatus(c.RemotePeer())
			if len(nw.Peers()) < targetPeers {
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

// headMoved schedules one head exchange with every peer shortly after this
// node's head moved; more moves meanwhile share it.
func (s *syncer) headMoved() { s.recheck.after(recheckAfter, s.askAll) }

// gossipMoved notes that gossip just moved this node's head.
func (s *syncer) gossipMoved() { s.hold.moved() }

// stop ends syncing, serving and discovery, and waits for the syncer's
// goroutines. A request served meanwhile is refused; so is every one after.
func (s *syncer) stop() {
	s.cancel()
	s.host.RemoveStreamHandler(protocol.SyncID)
	if s.notify != nil {
		s.host.Network().StopNotify(s.notify)
	}
	s.recheck.stop()
	s.grace.stop()
	if s.discover != nil {
		s.discover.stop()
	}
	s.wg.Wait()
}

func (s *syncer) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wakeAfter wakes the sync loop after d (once, however often it is asked
// meanwhile).
func (s *syncer) wakeAfter(d time.Duration) { s.grace.after(d, s.wake) }

// askStatus queues a status exchange with p; if the queue is full the
// periodic check will ask later.
func (s *syncer) askStatus(p peer.ID) {
	select {
	case s.ask <- p:
	default:
	}
}

// askAll queues a status exchange with every connected peer.
func (s *syncer) askAll() {
	for _, p := range s.host.Network().Peers() {
		s.askStatus(p)
	}
}

func (s *syncer) askLoop() {
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
func (s *syncer) status() protocol.Status {
	head := s.chain.Head()
	return protocol.Status{Genesis: s.genesis, Height: head.Index, Head: head.Hash}
}

// noteHead records what p says its head is, and wakes the sync loop if it is
// better than ours. A peer with another genesis is disconnected.
func (s *syncer) noteHead(p peer.ID, st protocol.Status) {
	if st.Genesis != s.genesis {
		s.mu.Lock()
		_, known := s.banned[p]
		s.banned[p] = ban{until: s.now().Add(banFor), fault: true}
		s.mu.Unlock()
		if !known {
			s.log.Warn("peer is on another network (different genesis); disconnecting", "peer", p, "genesis", st.Genesis)
		}
		s.drop("sync_other_genesis")
		s.host.Network().ClosePeer(p)
		return
	}
	s.mu.Lock()
	s.heads[p] = st
	if s.host.Network().Connectedness(p) == network.Connected {
		s.members[p] = true
	}
	s.mu.Unlock()
	head := s.chain.Head()
	if st.Better(head.Index, head.Hash) {
		s.wake()
	}
}

// hint records that p relayed block b, whose parent this node lacks: p's
// head is at least b, and worth syncing from.
func (s *syncer) hint(p peer.ID, b *ledger.Block) {
	s.saw(p, b)
	s.wake()
}

// saw records that p relayed block b: its head is at least b.
func (s *syncer) saw(p peer.ID, b *ledger.Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.heads[p]; !ok || (protocol.Status{Height: b.Index, Head: b.Hash}).Better(cur.Height, cur.Head) {
		s.heads[p] = protocol.Status{Genesis: s.genesis, Height: b.Index, Head: b.Hash}
	}
}

// head returns the head p last reported, if any.
func (s *syncer) head(p peer.ID) (protocol.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.heads[p]
	return st, ok
}

// faulty reports whether p is banned from sync for bad sync data.
func (s *syncer) faulty(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.banned[p]
	return ok && b.fault && s.now().Before(b.until)
}

// pruneBans forgets bans that have run out (pick forgets those of peers it
// considers; this is for the peers that left).
func (s *syncer) pruneBans() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, b := range s.banned {
		if !now.Before(b.until) {
			delete(s.banned, p)
		}
	}
}

// Progress returns the sync in progress, or nil.
func (s *syncer) Progress() *SyncProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress == nil {
		return nil
	}
	p := *s.progress
	return &p
}

func (s *syncer) busy() bool { return s.Progress() != nil }

// run syncs from the best peer whenever one is ahead, and asks every peer
// for its head every headCheckEvery.
func (s *syncer) run() {
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
		s.reappend()
	}
}

// pick returns the connected, unbanned peer with the best head, if that head
// is better than ours.
func (s *syncer) pick() (peer.ID, protocol.Status, bool) {
	head := s.chain.Head()
	s.mu.Lock()
	defer s.mu.Unlock()
	var best peer.ID
	var bestSt protocol.Status
	for p, st := range s.heads {
		if b, ok := s.banned[p]; ok {
			if s.now().Before(b.until) {
				continue
			}
			delete(s.banned, p)
		}
		if !st.Better(head.Index, head.Hash) || s.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		if best == "" || st.Better(bestSt.Height, bestSt.Head) {
			best, bestSt = p, st
		}
	}
	return best, bestSt, best != ""
}

// syncFault is a sync response that proves the peer misbehaved.
type syncFault struct {
	reason string
	err    error
}

func (f *syncFault) Error() string { return f.reason + ": " + f.err.Error() }

func fault(reason string, format string, args ...any) error {
	return &syncFault{reason, fmt.Errorf(format, args...)}
}

// syncFrom fetches blocks from p until this node's head is as good as p's.
// The next batch is fetched and its signatures checked while the current
// one is stored, so the network, the CPUs and the disk overlap.
func (s *syncer) syncFrom(p peer.ID, target protocol.Status) {
	chain := s.chain
	start, startHead := time.Now(), chain.Head().Hash
	prog := &SyncProgress{Peer: p, From: chain.Height(), Height: chain.Height(), Target: target.Height}
	big := target.Height > prog.From+progressMin
	s.setProgress(prog, big)
	defer func() {
		prog.Done, prog.Elapsed = true, time.Since(start)
		prog.Height = chain.Height()
		s.setProgress(nil, false)
		if head := chain.Head(); head.Hash != startHead {
			s.relay(head)
		}
		if prog.Height > prog.From {
			s.log.Info("synced", "peer", p, "from", prog.From, "to", prog.Height, "elapsed", prog.Elapsed.Round(time.Millisecond))
			s.report(*prog)
		}
	}()
	var cur cursor
	lastReport := time.Now()
	next := s.fetchNext(p, cur)
	for {
		var f fetched
		select {
		case <-s.ctx.Done():
			return
		case f = <-next:
		}
		next = nil
		if f.err != nil {
			s.failed(p, f.err)
			return
		}
		s.mu.Lock()
		s.heads[p] = f.status
		s.mu.Unlock()
		target = f.status
		if len(f.blocks) == 0 {
			return // p has nothing past our locator: its head is not better after all
		}
		advanced := cur.moveTo(f.blocks[len(f.blocks)-1])
		if target.Better(cur.index, cur.hash) {
			next = s.fetchNext(p, cur)
		}
		if !s.store(p, f.checked, advanced) {
			return
		}
		prog.Height, prog.Target = chain.Height(), target.Height
		s.setProgress(prog, big)
		if big && time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			s.report(*prog)
		}
		if head := chain.Head(); !target.Better(head.Index, head.Hash) {
			return
		}
		if next == nil {
			next = s.fetchNext(p, cur)
		}
	}
}

// cursor is the last block a peer sent in this sync: where its next answer
// starts.
type cursor struct {
	hash  string
	index uint64
}

// moveTo moves the cursor to b, reporting whether that is further than
// before (or the first answer).
func (c *cursor) moveTo(b *ledger.Block) bool {
	advanced := c.hash == "" || b.Index > c.index
	c.hash, c.index = b.Hash, b.Index
	return advanced
}

// fetchNext fetches and checks, in the background, the blocks p has after
// this node's locator (with the cursor first, once there is one).
func (s *syncer) fetchNext(p peer.ID, cur cursor) <-chan fetched {
	locator := s.chain.Locator()
	if cur.hash != "" {
		locator = append([]string{cur.hash}, locator[:min(len(locator), ledger.MaxLocator-1)]...)
	}
	ch := make(chan fetched, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		blocks, st, err := s.fetch(p, locator)
		var checked *ledger.Checked
		if err == nil {
			checked = s.chain.Check(blocks...)
		}
		ch <- fetched{blocks, checked, st, err}
	}()
	return ch
}

// store adds one fetched, checked run from p to the chain, and reports
// whether the sync from p should go on. advanced says whether the run
// reached past the previous one.
func (s *syncer) store(p peer.ID, run *ledger.Checked, advanced bool) bool {
	limited := s.budgeted(run)
	res, err := s.chain.Process(run)
	s.added(res, p)
	if ledger.Code(err) == ledger.ErrDuplicate {
		err = nil // all held already: judged below
	}
	if err != nil {
		s.failed(p, err)
		return false
	}
	if limited {
		// Young blocks over their author's budget: not the peer's
		// fault; come back once the budget has refilled.
		s.drop("sync_author_rate_limited")
		s.mu.Lock()
		s.banned[p] = ban{until: s.now().Add(coolOff)}
		s.mu.Unlock()
		return false
	}
	if len(res.Added) == 0 && !advanced {
		// Blocks we hold, again: p is not leading anywhere new.
		s.log.Info("peer repeats blocks this node has; not syncing from it", "peer", p)
		s.mu.Lock()
		delete(s.heads, p)
		s.mu.Unlock()
		return false
	}
	if res.Reorg {
		s.log.Info("switched to a better branch", "peer", p, "dropped", res.Dropped, "head", res.Head.Index)
	}
	return true
}

// budgeted applies the author budget to a fetched run: it is cut at the
// first young block, new to this node, whose author has no budget left.
// It reports whether it cut.
func (s *syncer) budgeted(run *ledger.Checked) bool {
	valid, _ := run.Valid()
	for i, b := range run.Blocks()[:valid] {
		if !s.budget.Young(b) || s.chain.HasBlock(b) {
			continue
		}
		if !s.budget.Allow(b.Author) {
			run.Limit(i)
			return true
		}
	}
	return false
}

// fetched is the outcome of one blocks request.
type fetched struct {
	blocks  []*ledger.Block
	checked *ledger.Checked
	status  protocol.Status
	err     error
}

func (s *syncer) setProgress(p *SyncProgress, announce bool) {
	s.mu.Lock()
	if p == nil {
		s.progress = nil
	} else {
		cp := *p
		s.progress = &cp
	}
	s.mu.Unlock()
	if announce && p != nil && p.Height == p.From {
		s.report(*p)
	}
}

// failed handles a failed fetch: a peer that proved itself faulty is
// counted, banned from sync and disconnected; otherwise its head is
// forgotten until it reports it again.
func (s *syncer) failed(p peer.ID, err error) {
	var f *syncFault
	switch code := ledger.Code(err); {
	case s.ctx.Err() != nil:
		return
	case code == ledger.ErrTooDeep:
		// Not provably wrong (a peer may hold it after a long split), but
		// this node will not adopt it: stop asking for a while.
		s.drop("sync_" + code.String())
		s.log.Warn("refusing a branch that would rewrite settled history", "peer", p, "err", err)
		s.mu.Lock()
		delete(s.heads, p)
		s.banned[p] = ban{until: s.now().Add(banFor)}
		s.mu.Unlock()
		return
	case code != 0 && code.Provable():
		f = &syncFault{"sync_" + code.String(), err}
	case code == ledger.ErrUnknownParent:
		f = &syncFault{"sync_unlinked", err}
	case errors.As(err, &f):
		f.reason = "sync_" + f.reason
	}
	s.mu.Lock()
	delete(s.heads, p)
	if f != nil {
		s.banned[p] = ban{until: s.now().Add(banFor), fault: true}
	} else {
		s.banned[p] = ban{until: s.now().Add(coolOff)}
	}
	s.mu.Unlock()
	if f == nil {
		s.log.Info("sync from peer failed; trying others", "peer", p, "err", err)
		return
	}
	s.drop(f.reason)
	s.log.Warn("peer sent bad sync data; disconnecting", "peer", p, "reason", f.reason, "err", err)
	s.host.Network().ClosePeer(p)
}

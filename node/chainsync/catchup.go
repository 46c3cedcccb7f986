package chainsync

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// syncFrom fetches blocks from p until this node's head is as good as p's.
// The next batch is fetched while the last one's signatures are checked
// (on every core), and the store's flusher writes earlier ones meanwhile,
// so the network, the CPUs and the disk overlap.
func (s *Syncer) syncFrom(p peer.ID, target protocol.Status) {
	chain := s.deps.Chain
	start, startHead := time.Now(), chain.Head().Hash
	prog := &Progress{Peer: p, From: chain.Height(), Height: chain.Height(), Target: target.Height}
	big := target.Height > prog.From+progressMin
	s.setProgress(prog, big)
	defer func() {
		prog.Done, prog.Elapsed = true, time.Since(start)
		prog.Height = chain.Height()
		s.setProgress(nil, false)
		if head := chain.Head(); head.Hash != startHead {
			s.deps.Relay(head)
		}
		if prog.Height > prog.From {
			s.deps.Log.Info("synced", "peer", p, "from", prog.From, "to", prog.Height, "elapsed", prog.Elapsed.Round(time.Millisecond))
			s.deps.Report(*prog)
		}
	}()
	var cur cursor
	lastReport := time.Now()
	next := s.fetchNext(p, cur)
	for {
		f, ok := next.received(s.ctx)
		if !ok {
			return
		}
		ahead := next
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
		run, ok := ahead.verdict(s.ctx)
		if !ok || !s.store(p, run, advanced) {
			return
		}
		prog.Height, prog.Target = chain.Height(), target.Height
		s.setProgress(prog, big)
		if big && time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			s.deps.Report(*prog)
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
// this node's locator (with the cursor first, once there is one). The
// answer is received before it is checked, so the next fetch can start
// while this one's signatures are checked.
func (s *Syncer) fetchNext(p peer.ID, cur cursor) *inflight {
	locator := s.deps.Chain.Locator()
	if cur.hash != "" {
		locator = append([]string{cur.hash}, locator[:min(len(locator), ledger.MaxLocator-1)]...)
	}
	in := &inflight{answer: make(chan fetched, 1), checked: make(chan *ledger.Checked, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		blocks, st, err := s.fetch(p, locator)
		in.answer <- fetched{blocks, st, err}
		if err == nil && s.ctx.Err() == nil {
			in.checked <- s.deps.Chain.Check(blocks...)
		}
	}()
	return in
}

// inflight is one blocks request under way: its answer, then its blocks
// checked. Both channels are buffered, so the goroutine behind them never
// waits for a reader that has gone.
type inflight struct {
	answer  chan fetched
	checked chan *ledger.Checked
}

// received waits for the answer; false if the syncer stopped first.
func (in *inflight) received(ctx context.Context) (fetched, bool) {
	select {
	case <-ctx.Done():
		return fetched{}, false
	case f := <-in.answer:
		return f, true
	}
}

// verdict waits for the answer's blocks to be checked; false if the
// syncer stopped first.
func (in *inflight) verdict(ctx context.Context) (*ledger.Checked, bool) {
	select {
	case <-ctx.Done():
		return nil, false
	case run := <-in.checked:
		return run, true
	}
}

// fetched is the outcome of one blocks request.
type fetched struct {
	blocks []*ledger.Block
	status protocol.Status
	err    error
}

// store adds one fetched, checked run from p to the chain, and reports
// whether the sync from p should go on. advanced says whether the run
// reached past the previous one.
func (s *Syncer) store(p peer.ID, run *ledger.Checked, advanced bool) bool {
	limit := s.budgeted(p, run)
	res, err := s.deps.Chain.Process(run)
	s.deps.Added(res, p)
	if ledger.Code(err) == ledger.ErrDuplicate {
		err = nil // all held already: judged below
	}
	if err != nil {
		s.failed(p, err)
		return false
	}
	if limit != "" {
		// Young blocks over a budget: not the peer's fault (it may
		// relay what a flood brought it); come back once the budget has
		// refilled.
		s.deps.Drop("sync_" + limit)
		s.mu.Lock()
		s.banned[p] = ban{until: s.deps.Now().Add(coolOff)}
		s.mu.Unlock()
		return false
	}
	if len(res.Added) == 0 && !advanced {
		// Blocks we hold, again: p is not leading anywhere new.
		s.deps.Log.Info("peer repeats blocks this node has; not syncing from it", "peer", p)
		s.mu.Lock()
		delete(s.heads, p)
		s.mu.Unlock()
		return false
	}
	if res.Reorg {
		s.deps.Log.Info("switched to a better branch", "peer", p, "dropped", res.Dropped, "head", res.Head.Index)
	}
	return true
}

// budgeted applies the budget to a run fetched from p: it is cut at the
// first young block, new to this node, over a budget (its author's, p's,
// new authors'). It returns the budget's drop reason if it cut, else "".
func (s *Syncer) budgeted(p peer.ID, run *ledger.Checked) string {
	valid, _ := run.Valid()
	for i, b := range run.Blocks()[:valid] {
		if !s.deps.Budget.Young(b) || s.deps.Chain.HasBlock(b) {
			continue
		}
		if limit, ok := s.deps.Budget.Allow(b, p); !ok {
			run.Limit(i)
			return limit
		}
	}
	return ""
}

// failed handles a failed fetch: a peer that proved itself faulty is
// counted, banned from sync and disconnected; otherwise its head is
// forgotten until it reports it again.
func (s *Syncer) failed(p peer.ID, err error) {
	var f *syncFault
	switch code := ledger.Code(err); {
	case s.ctx.Err() != nil:
		return
	case code == ledger.ErrTooDeep:
		// Not provably wrong (a peer may hold it after a long split), but
		// this node will not adopt it: stop asking for a while.
		s.deps.Drop("sync_" + code.String())
		if s.deps.Refused != nil {
			s.deps.Refused(p, err)
		}
		s.mu.Lock()
		delete(s.heads, p)
		s.banned[p] = ban{until: s.deps.Now().Add(banFor)}
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
	switch {
	case f != nil && f.reason == "sync_stall":
		// No data within the timeout: a link that went down (a split)
		// looks the same as a peer that stalls on purpose. The
		// connection is closed, and the peer is not synced from until
		// it connects again (a staller pays a new connection each time).
		s.banned[p] = ban{until: s.deps.Now().Add(banFor), stalled: true}
	case f != nil:
		s.banned[p] = ban{until: s.deps.Now().Add(banFor), fault: true}
	default:
		s.banned[p] = ban{until: s.deps.Now().Add(coolOff)}
	}
	s.mu.Unlock()
	if f == nil {
		s.deps.Log.Info("sync from peer failed; trying others", "peer", p, "err", err)
		return
	}
	s.deps.Drop(f.reason)
	if f.reason == "sync_stall" {
		s.deps.Log.Info("peer's sync answer stalled (a dead link, or a stalling peer); disconnecting", "peer", p, "err", err)
	} else {
		s.deps.Log.Warn("peer sent bad sync data; disconnecting", "peer", p, "reason", f.reason, "err", err)
	}
	s.deps.Host.Network().ClosePeer(p)
}

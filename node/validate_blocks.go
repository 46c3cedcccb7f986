package node

import (
	"context"
	"runtime/debug"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// delivery is the ValidatorData of an accepted block message, so the
// subscriber does not decode it again.
type delivery struct {
	block *ledger.Block
	// own is set on blocks already reported to the caller (appended here,
	// or the head a sync reached); they are not announced as arrivals.
	own bool
}

// validateBlock is the blocks topic validator. A message is relayed only if
// it is accepted here, and it is accepted only once its block is added to
// the chain (in memory at once, on disk with the next group commit), so a
// node never forwards what it would not keep.
//
//	rule                                                verdict
//	not a block: bad JSON, unknown fields, oversized    REJECT
//	bad hash, bad signature, bad author, bad index      REJECT
//	empty or oversized data, claims to be genesis       REJECT
//	already stored                                      IGNORE
//	valid and new, but over its author's budget         IGNORE (budget.go)
//	parent unknown (held as an orphan)                  IGNORE
//	timestamp too far ahead of this node's clock        IGNORE
//	with --authors: author not on the list              REJECT
//	a branch replacing settled blocks below finality     IGNORE
//	the store failed (not the sender's fault)           IGNORE
//	a panic while validating                            REJECT
//
// REJECT penalises the sender in GossipSub's peer score; IGNORE does not.
func (n *Node) validateBlock(_ context.Context, from peer.ID, msg *pubsub.Message) (verdict pubsub.ValidationResult) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("block validator panicked; rejecting message", "from", from, "panic", r, "stack", string(debug.Stack()))
			n.dropBlock("reject", "panic")
			verdict = pubsub.ValidationReject
		}
		if verdict == pubsub.ValidationReject && from != n.host.ID() {
			n.sync.rejectedFrom(from)
		}
	}()
	if from == n.host.ID() {
		// Our own publication: Append or relayConnected stored it already.
		if d, ok := msg.ValidatorData.(*delivery); ok && n.chain.HasBlock(d.block) {
			n.traces.gossiped(d.block, msg, "", time.Now(), 0) // so its sends are traced
			return pubsub.ValidationAccept
		}
		return pubsub.ValidationReject
	}
	arrived := time.Now()
	nb, ok := n.msgIDs.take(msg.ID) // decoded when GossipSub named it
	b, end := nb.block, nb.end
	var err error
	if !ok {
		b, err = protocol.DecodeBlock(msg.Data)
	}
	if err != nil {
		n.dropBlock("reject", "malformed")
		n.log.Debug("rejected gossip message", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	if !ok {
		end = n.pending.begin(b.Hash)
	}
	defer end()
	n.checkAhead(b, nb.checked == nil)
	if nb.checked != nil {
		<-nb.checked // in another validator's batch
	}
	// One check of the block on its own (a copy of one checked moments
	// ago costs a hash; a tampered copy of a stored block fails here).
	run := n.chain.Check(b)
	var res ledger.Result
	if _, err = run.Valid(); err == nil {
		// Valid and new to this node: it counts against its author's budget.
		if !n.chain.HasBlock(b) && !n.budget.allow(b.Author) {
			n.budget.over(from)
			n.dropBlock("ignore", "author_rate_limited")
			return pubsub.ValidationIgnore
		}
		if n.cfg.checkCost > 0 {
			time.Sleep(n.cfg.checkCost) // the simulator's model of the CPU spent
		}
		// Its parent may be in the other worker's hands (pending.go).
		n.pending.wait(n.ctx, b.PrevHash)
		res, err = n.chain.Process(run)
	}
	if err != nil {
		code := ledger.Code(err)
		if code == 0 { // the store failed: not the sender's fault
			n.log.Error("store block", "index", b.Index, "err", err)
			return pubsub.ValidationIgnore
		}
		verdict := "ignore"
		if code.Provable() {
			verdict = "reject"
		}
		n.dropBlock(verdict, code.String())
		if code == ledger.ErrTooDeep {
			n.log.Warn("refusing a branch that would rewrite settled history", "from", from, "err", err)
		}
		switch code {
		case ledger.ErrUnknownParent:
			// Held as an orphan; the sender has its ancestors.
			n.traces.gossiped(b, msg, from, arrived, 0)
			n.sync.hint(from, b)
		case ledger.ErrDuplicate:
			n.traces.duplicate(b.Hash, from)
		}
		if code.Provable() {
			n.log.Debug("rejected block", "from", from, "reason", code, "err", err)
			return pubsub.ValidationReject
		}
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = &delivery{block: b}
	n.traces.gossiped(b, msg, from, arrived, time.Since(arrived))
	// Every block stored by this message: the block, and held orphans it
	// connected (they arrived by gossip too, ahead of their parent).
	for _, a := range res.Added {
		n.metrics.propagation.Observe(max(0, time.Since(a.Time()).Seconds()))
	}
	n.added(res, OriginGossip)
	n.sync.saw(from, b)
	if res.Reorg {
		n.wakeReappend()
	}
	// Orphans this block connected were ignored when they arrived; publish
	// them now so they are relayed and announced.
	for _, o := range res.Added[1:] {
		select {
		case n.republish <- &delivery{block: o}:
		default:
			n.log.Warn("relay queue full; connected block not relayed", "index", o.Index)
		}
	}
	return pubsub.ValidationAccept
}

// aheadBatch is how many signatures a validator checks at once when
// messages are queued behind the one it holds.
const aheadBatch = 64

// checkAhead checks, in one batch, the signatures of the blocks queued for
// the validator that no one has taken, and b's too if own, so that each of
// their own checks costs a hash. With nothing queued it does nothing and
// b is checked alone, at once. GossipSub validates on GOMAXPROCS workers
// in the order it named messages: in a burst the queue behind each worker
// is long, and a batch of 64 costs half as much per signature as 64
// checks alone.
func (n *Node) checkAhead(b *ledger.Block, own bool) {
	limit := aheadBatch
	if own {
		limit--
	}
	bs, done := n.msgIDs.ahead(limit)
	defer done()
	if len(bs) == 0 {
		return
	}
	if own {
		bs = append(bs, b)
	}
	n.chain.CheckAhead(bs...)
}

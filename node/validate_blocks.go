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

// validateBlock is the blocks topic validator. A message is relayed only if
// it is accepted here, and it is accepted only once its block is added to
// the chain (in memory at once, on disk with the next group commit), so a
// node never forwards what it would not keep. It decodes, checks, applies
// the author budget, stores, and turns the outcome into a verdict:
//
//	rule                                                verdict
//	not a block: bad JSON, unknown fields, oversized    REJECT
//	bad hash, bad signature, bad author, bad index      REJECT
//	empty or oversized data, claims to be genesis       REJECT
//	already stored                                      IGNORE
//	valid and new, but over a budget: its author's,     IGNORE (budget.go)
//	  its sender's, new authors'
//	parent unknown (held as an orphan)                  IGNORE
//	timestamp too far ahead of this node's clock        IGNORE
//	with --authors: author not on the list              REJECT
//	a branch replacing settled blocks below finality     IGNORE
//	the store failed (not the sender's fault)           IGNORE
//	a panic while validating                            REJECT
//
// The ledger's rules are told apart by their error codes, and a code's
// verdict is ledger.ErrorCode.Provable (verdictOf). REJECT penalises the
// sender in GossipSub's peer score; IGNORE does not. An accepted message
// carries its block as ValidatorData.
func (n *Node) validateBlock(_ context.Context, from peer.ID, msg *pubsub.Message) (verdict pubsub.ValidationResult) {
	defer n.recoverVerdict(from, &verdict)
	if from == n.host.ID() {
		return n.validateOwn(msg)
	}
	st := &stages{start: time.Now()}
	nb, err := n.decodeBlock(msg, st.start)
	if err != nil {
		n.dropBlock("reject", "malformed")
		n.log.Debug("rejected gossip message", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	defer nb.end()
	b := nb.block
	st.named = nb.at
	n.checkAhead(b, nb.checked == nil)
	if nb.checked != nil {
		<-nb.checked // in another validator's batch
	}
	// One check of the block on its own (a copy of one checked moments
	// ago costs a hash; a tampered copy of a stored block fails here).
	run := n.chain.Check(b)
	if _, err := run.Valid(); err != nil {
		return n.refused(b, msg, from, st, err)
	}
	st.checked = time.Now()
	// Valid and new to this node: it counts against its author's budget
	// and the budgets of the peer that brought it (budget.go).
	if !n.chain.HasBlock(b) {
		if limit, ok := n.budget.Allow(b, from); !ok {
			n.dropBlock("ignore", limit)
			n.budget.refuse(from)
			return pubsub.ValidationIgnore
		}
	}
	// Its parent may be in the other worker's hands (pending.go).
	n.pending.wait(n.ctx, b.PrevHash)
	st.parent = time.Now()
	res, err := n.chain.Process(run)
	if err != nil {
		return n.refused(b, msg, from, st, err)
	}
	st.stored = time.Now()
	msg.ValidatorData = b
	n.changed(change{res: res, origin: OriginGossip, from: from, msg: msg, stages: st})
	return pubsub.ValidationAccept
}

// recoverVerdict turns a panic in the validator into a REJECT, and tells
// the syncer of every peer whose message was rejected (discovery neither
// names it to others nor dials it for a while: node/chainsync).
func (n *Node) recoverVerdict(from peer.ID, verdict *pubsub.ValidationResult) {
	if r := recover(); r != nil {
		n.log.Error("block validator panicked; rejecting message", "from", from, "panic", r, "stack", string(debug.Stack()))
		n.dropBlock("reject", "panic")
		*verdict = pubsub.ValidationReject
	}
	if *verdict == pubsub.ValidationReject && from != n.host.ID() {
		n.sync.RejectedFrom(from)
	}
}

// validateOwn accepts this node's own publication: Post, the re-append
// loop or the relay (publish.go) stored its block already.
func (n *Node) validateOwn(msg *pubsub.Message) pubsub.ValidationResult {
	if b, ok := msg.ValidatorData.(*ledger.Block); ok && n.chain.HasBlock(b) {
		n.traces.gossiped(b, msg, "", &stages{named: time.Now()}) // so its sends are traced
		return pubsub.ValidationAccept
	}
	return pubsub.ValidationReject
}

// decodeBlock returns msg's block, decoded when GossipSub named the message
// (msgcache.go) or now, with the channel closed once a batch has checked
// its signature (nil: none has), the func that ends its pending state
// (pending.go) and when it arrived (named then, or now).
func (n *Node) decodeBlock(msg *pubsub.Message, now time.Time) (named, error) {
	if nb, ok := n.msgIDs.take(msg.ID); ok {
		return nb, nil
	}
	b, err := protocol.DecodeBlock(msg.Data)
	if err != nil {
		return named{}, err
	}
	return named{block: b, end: n.pending.begin(b.Hash), at: now}, nil
}

// stages are the times a gossiped block reached each stage of its
// validation, for its trace (protocol.Trace's stages): named when
// GossipSub read it, start when a validator took it, checked, parent
// once its parent was no longer being checked, stored. A zero time is a
// stage not reached.
type stages struct {
	named, start, checked, parent, stored time.Time
}

// refused handles a block the ledger refused with err: it is counted under
// its rule's code, and its verdict is the code's (verdictOf). A block held
// as an orphan is traced, and its sender asked for its ancestors.
func (n *Node) refused(b *ledger.Block, msg *pubsub.Message, from peer.ID, st *stages, err error) pubsub.ValidationResult {
	code := ledger.Code(err)
	if code == 0 { // the store failed: not the sender's fault
		n.log.Error("store block", "index", b.Index, "err", err)
		return pubsub.ValidationIgnore
	}
	verdict := verdictOf(code)
	n.dropBlock(verdictNames[verdict], code.String())
	switch code {
	case ledger.ErrTooDeep:
		n.refusedBranch(from, err)
	case ledger.ErrUnknownParent:
		// Held as an orphan; the sender has its ancestors.
		n.traces.gossiped(b, msg, from, &stages{named: st.named})
		n.sync.Hint(from, b)
	case ledger.ErrDuplicate:
		n.traces.duplicate(b.Hash, from)
	}
	if verdict == pubsub.ValidationReject {
		n.log.Debug("rejected block", "from", from, "reason", code, "err", err)
	}
	return verdict
}

// verdictOf is the gossip verdict on a block refused under code: REJECT
// where the block proves its sender broke the protocol, IGNORE where it is
// only early, known or not for this node (ledger.ErrorCode.Provable, the
// one table of which is which).
func verdictOf(code ledger.ErrorCode) pubsub.ValidationResult {
	if code.Provable() {
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}

// verdictNames label the drop metrics.
var verdictNames = map[pubsub.ValidationResult]string{
	pubsub.ValidationReject: "reject",
	pubsub.ValidationIgnore: "ignore",
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

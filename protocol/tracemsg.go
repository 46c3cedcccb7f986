package protocol

import "fmt"

// Trace is one node's record of how a block reached it: when and from whom
// it first came, by which path, what handling it cost before it was
// relayed, the copies that came after, and the peers it was sent on to.
// GET /blocks/{id}/trace serves it; a trace request asks a peer for its own.
type Trace struct {
	Hash   string `json:"hash"`
	Index  uint64 `json:"index"`
	Author string `json:"author"`
	// FirstSeenMS is when the block first reached this node, Unix ms.
	FirstSeenMS int64 `json:"first_seen_ms"`
	// From is the peer it came from first ("" if typed here); Via how:
	// "gossip", "sync" or "local".
	From string `json:"from"`
	Via  string `json:"via"`
	// DelayMS is FirstSeenMS minus the block's timestamp (the author's
	// clock: across machines, their clocks' offset is in it).
	DelayMS float64 `json:"delay_ms"`
	// HandleUS is how long it took from arriving to its verdict (gossip
	// only): what it waited for and what checking and storing it cost
	// before it could be relayed. The stages break it down: QueueUS from
	// arriving (GossipSub read and named the message) to a validator
	// taking it, CheckUS checking it (its hash and signature, or waiting
	// for the batch that checks it), ParentUS waiting for its parent,
	// which another validator was checking, StoreUS adding it to the
	// chain. RelayUS is from the verdict to its first send to a peer (0:
	// not sent).
	HandleUS int64 `json:"handle_us,omitempty"`
	QueueUS  int64 `json:"queue_us,omitempty"`
	CheckUS  int64 `json:"check_us,omitempty"`
	ParentUS int64 `json:"parent_us,omitempty"`
	StoreUS  int64 `json:"store_us,omitempty"`
	RelayUS  int64 `json:"relay_us,omitempty"`
	// Duplicates counts the copies that arrived after the first; Copies
	// names the senders of the first MaxTraceCopies of them.
	Duplicates int         `json:"duplicates"`
	Copies     []TraceCopy `json:"copies"`
	// ForwardedTo lists the peers this node sent the block to (at most
	// MaxTraceForwards), as GossipSub reports its sends: mesh peers,
	// flood-published peers and answers to IWANT.
	ForwardedTo []string `json:"forwarded_to"`
}

// TraceCopy is a duplicate copy of a block: who sent it, how long after
// the first.
type TraceCopy struct {
	From    string  `json:"from"`
	AfterMS float64 `json:"after_ms"`
}

// TraceAnswer answers a trace request: Known is false if the server has
// no record of the block (it never had it, or its record was pushed out by
// MaxTraces newer ones).
type TraceAnswer struct {
	Known bool   `json:"known"`
	Trace *Trace `json:"trace,omitempty"`
}

// Check reports what is wrong with an answer to a trace request for hash.
func (a *TraceAnswer) Check(hash string) error {
	switch {
	case !a.Known && a.Trace != nil:
		return fmt.Errorf("trace answer is unknown and has a trace")
	case a.Known && a.Trace == nil:
		return fmt.Errorf("trace answer is known and has no trace")
	case !a.Known:
		return nil
	case a.Trace.Hash != hash:
		return fmt.Errorf("trace answer is for block %.16s, not %.16s", a.Trace.Hash, hash)
	case len(a.Trace.Copies) > MaxTraceCopies || len(a.Trace.ForwardedTo) > MaxTraceForwards:
		return fmt.Errorf("trace answer names %d copies and %d forwards, limits %d and %d", len(a.Trace.Copies), len(a.Trace.ForwardedTo), MaxTraceCopies, MaxTraceForwards)
	}
	return nil
}

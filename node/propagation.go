package node

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// Propagation traces. A node records, for its most recent blocks
// (protocol.MaxTraces), how each reached it: when it first came, from
// which peer and by which path, how long checking and storing took before
// GossipSub relayed it, the duplicate copies GossipSub reported after, and
// the peers GossipSub sent it to. What it cannot know: how a copy it never
// received travelled, or whether a peer it sent to had the block already
// (that peer counts the copy as its duplicate).
//
// Copies and sends are matched to blocks without decoding anything on
// GossipSub's event loop: a duplicate by its message ID, a send by its
// message's pointer, which is the one the validator saw.

// traceBook holds the traces, bounded: the oldest is forgotten when a new
// one would exceed protocol.MaxTraces.
type traceBook struct {
	noTrace
	now func() time.Time

	mu     sync.Mutex // guards the fields below
	byHash map[string]*traceEntry
	byMsg  map[string]*traceEntry      // GossipSub message ID -> its block's trace
	byPtr  map[*pb.Message]*traceEntry // messages validated here -> their block's trace
	order  []string                    // hashes, oldest first
	// early holds copies GossipSub reported before the first copy's
	// check finished (it marks a message seen when validation starts),
	// by message ID, until the block's trace exists (bounded: cleared at
	// maxEarlyCopies IDs).
	early map[string][]earlyCopy
}

type earlyCopy struct {
	from peer.ID
	at   time.Time
}

const maxEarlyCopies = 1024

// traceEntry is one block's trace as it is kept: peers as raw IDs (their
// text, base58, is made only when the trace is read; encoding one per send
// was 7% of a node's CPU in a burst).
type traceEntry struct {
	t      protocol.Trace // but its peer fields, filled in by get
	first  time.Time
	from   peer.ID
	copies []traceCopy
	fwd    []peer.ID
	msgID  string
	msgs   []*pb.Message
	// verdict is when the block was stored and its message accepted
	// (gossip; zero otherwise), for RelayUS.
	verdict time.Time
}

type traceCopy struct {
	from  peer.ID
	after time.Duration
}

func newTraceBook(now func() time.Time) *traceBook {
	if now == nil {
		now = time.Now
	}
	return &traceBook{now: now, byHash: map[string]*traceEntry{}, byMsg: map[string]*traceEntry{}, byPtr: map[*pb.Message]*traceEntry{}, early: map[string][]earlyCopy{}}
}

// seen records that b reached this node at 'at', from p ("" if typed
// here) by via, unless it has a trace already. It returns the trace.
// tb.mu is held.
func (tb *traceBook) seen(b *ledger.Block, from peer.ID, via string, at time.Time) *traceEntry {
	if e, ok := tb.byHash[b.Hash]; ok {
		return e
	}
	e := &traceEntry{first: at, from: from, t: protocol.Trace{
		Hash: b.Hash, Index: b.Index, Author: b.Author, FirstSeenMS: at.UnixMilli(), Via: via,
		DelayMS: float64(at.Sub(b.Time()).Microseconds()) / 1000,
	}}
	if len(tb.order) >= protocol.MaxTraces {
		tb.forget(tb.order[0])
		tb.order = tb.order[1:]
	}
	tb.byHash[b.Hash] = e
	tb.order = append(tb.order, b.Hash)
	return e
}

// forget drops hash's trace and what points at it. tb.mu is held.
func (tb *traceBook) forget(hash string) {
	e, ok := tb.byHash[hash]
	if !ok {
		return
	}
	delete(tb.byHash, hash)
	if e.msgID != "" {
		delete(tb.byMsg, e.msgID)
	}
	for _, m := range e.msgs {
		delete(tb.byPtr, m)
	}
}

// added records blocks made here (typed, re-appended: from is "") or
// stored by sync from a peer.
func (tb *traceBook) added(bs []*ledger.Block, from peer.ID, via string) {
	now := tb.now()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, b := range bs {
		tb.seen(b, from, via, now)
	}
}

// gossiped records a block that came in msg from p, and when it reached
// each stage of its validation (only named: held as an orphan, or this
// node's own message), and ties the message to it so its sends are traced.
func (tb *traceBook) gossiped(b *ledger.Block, msg *pubsub.Message, from peer.ID, st *stages) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	e := tb.seen(b, from, OriginGossip, st.named)
	if e.t.Via == OriginGossip && e.t.HandleUS == 0 && !st.stored.IsZero() {
		e.staged(st)
	}
	if e.msgID == "" && msg.ID != "" {
		e.msgID = msg.ID
		tb.byMsg[msg.ID] = e
		for _, c := range tb.early[msg.ID] {
			e.copy(c.from, c.at)
		}
		delete(tb.early, msg.ID)
	}
	if msg.Message != nil && tb.byPtr[msg.Message] == nil && len(e.msgs) < 4 {
		e.msgs = append(e.msgs, msg.Message)
		tb.byPtr[msg.Message] = e
	}
}

// DuplicateMessage (a RawTracer event) counts a copy of a traced block
// that GossipSub knew by its message ID.
func (tb *traceBook) DuplicateMessage(msg *pubsub.Message) {
	now := tb.now()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if e, ok := tb.byMsg[msg.ID]; ok {
		e.copy(msg.ReceivedFrom, now)
		return
	}
	if _, ok := tb.early[msg.ID]; !ok && len(tb.early) >= maxEarlyCopies {
		clear(tb.early)
	}
	if cs := tb.early[msg.ID]; len(cs) < protocol.MaxTraceCopies {
		tb.early[msg.ID] = append(cs, earlyCopy{msg.ReceivedFrom, now})
	}
}

// copyOf counts a copy of the message with id that this node dropped
// before GossipSub read it (copies.go), as DuplicateMessage would have.
func (tb *traceBook) copyOf(id string, from peer.ID) {
	tb.DuplicateMessage(&pubsub.Message{ID: id, ReceivedFrom: from})
}

// duplicate counts a copy of a traced block that reached the validator (it
// came while the first was being checked, or as another message).
func (tb *traceBook) duplicate(hash string, from peer.ID) {
	now := tb.now()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if e, ok := tb.byHash[hash]; ok {
		e.copy(from, now)
	}
}

// staged fills in the trace's stages from st, a stored block's.
func (e *traceEntry) staged(st *stages) {
	us := func(from, to time.Time) int64 { return max(1, to.Sub(from).Microseconds()) }
	e.t.HandleUS = us(st.named, st.stored)
	e.t.QueueUS = us(st.named, st.start)
	e.t.CheckUS = us(st.start, st.checked)
	e.t.ParentUS = us(st.checked, st.parent)
	e.t.StoreUS = us(st.parent, st.stored)
	e.verdict = st.stored
}

func (e *traceEntry) copy(from peer.ID, at time.Time) {
	if at.Before(e.first) {
		at = e.first // came while the first was being checked
	}
	e.t.Duplicates++
	if len(e.copies) < protocol.MaxTraceCopies {
		e.copies = append(e.copies, traceCopy{from, at.Sub(e.first)})
	}
}

// SendRPC (a RawTracer event) records the peers traced blocks are sent to.
func (tb *traceBook) SendRPC(rpc *pubsub.RPC, p peer.ID) {
	if len(rpc.Publish) == 0 {
		return
	}
	now := tb.now()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range rpc.Publish {
		e, ok := tb.byPtr[m]
		if !ok {
			continue
		}
		if e.t.RelayUS == 0 && !e.verdict.IsZero() {
			e.t.RelayUS = max(1, now.Sub(e.verdict).Microseconds())
		}
		if len(e.fwd) >= protocol.MaxTraceForwards || slices.Contains(e.fwd, p) {
			continue
		}
		e.fwd = append(e.fwd, p)
	}
}

// get returns a copy of hash's trace.
func (tb *traceBook) get(hash string) (*protocol.Trace, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	e, ok := tb.byHash[hash]
	if !ok {
		return nil, false
	}
	t := e.t
	if e.from != "" {
		t.From = e.from.String()
	}
	t.Copies = make([]protocol.TraceCopy, len(e.copies))
	for i, c := range e.copies {
		t.Copies[i] = protocol.TraceCopy{From: c.from.String(), AfterMS: float64(c.after.Microseconds()) / 1000}
	}
	t.ForwardedTo = make([]string, len(e.fwd))
	for i, p := range e.fwd {
		t.ForwardedTo[i] = p.String()
	}
	return &t, true
}

// Propagation is the propagation delay (arrival minus block timestamp) of
// the last blocks that came from other nodes, as this node measured it.
type Propagation struct {
	Blocks int     `json:"blocks"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
}

// propagation summarises the last n traced blocks that arrived by gossip
// or sync.
func (tb *traceBook) propagation(n int) Propagation {
	tb.mu.Lock()
	var delays []float64
	for i := len(tb.order) - 1; i >= 0 && len(delays) < n; i-- {
		if e := tb.byHash[tb.order[i]]; e.t.Via != OriginLocal {
			delays = append(delays, e.t.DelayMS)
		}
	}
	tb.mu.Unlock()
	if len(delays) == 0 {
		return Propagation{}
	}
	sort.Float64s(delays)
	at := func(q float64) float64 { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
	return Propagation{Blocks: len(delays), P50MS: at(0.50), P99MS: at(0.99)}
}

// Trace returns this node's record of how the block with hash reached it.
func (n *Node) Trace(hash string) (*protocol.Trace, bool) { return n.traces.get(hash) }

// PeerTrace is a connected peer's record of a block: its trace, or Unknown
// if it has none, or the Error of asking.
type PeerTrace struct {
	ID      string          `json:"id"`
	Trace   *protocol.Trace `json:"trace,omitempty"`
	Unknown bool            `json:"unknown,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// PeerTraces asks every connected peer, at once, for its trace of the
// block with hash (a trace request on the sync protocol).
func (n *Node) PeerTraces(ctx context.Context, hash string) []PeerTrace {
	peers := n.host.Network().Peers()
	out := make([]PeerTrace, len(peers)) // never nil: "peers": [] with none
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = PeerTrace{ID: p.String()}
			a, err := n.sync.AskTrace(ctx, p, hash)
			switch {
			case err != nil:
				out[i].Error = err.Error()
			case !a.Known:
				out[i].Unknown = true
			default:
				out[i].Trace = a.Trace
			}
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"gossipchain/protocol"
)

// Gossip queue sizes. go-libp2p-pubsub's defaults (32) drop messages in a
// burst instead of slowing down; these hold a burst of thousands of blocks.
const (
	peerOutboundQueue = 8192
	validateQueue     = 8192
	subscriptionQueue = 8192
)

// startGossip joins the blocks topic with its validator and starts the
// goroutines that drain deliveries and relay stored blocks (publish.go).
func (n *Node) startGossip() error {
	n.mesh = newMeshTracer(protocol.TopicBlocks)
	opts := []pubsub.Option{
		// Blocks carry their author's signature; signing each GossipSub
		// message too would be redundant and costs most of the throughput.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		// Content IDs (protocol.MessageID), remembered per message bytes.
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return n.msgIDs.id(m.Data) }),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		// A locally authored block goes to every subscribed peer, not only
		// the mesh, so a node's own blocks can't be eclipsed.
		pubsub.WithFloodPublish(true),
		// No peer exchange on PRUNE, either way: this node names no peers
		// when it prunes (WithPeerExchange stays at its default, off), and
		// takes none (score.go: acceptPXNever). A pruned peer would dial up
		// to 16 of the peers named, whatever it has already, and in a small
		// network every node drifts towards a connection to every other
		// (17-24 of 24 at 25 nodes, most above 20), each one more peer to
		// gossip with for every block; a hostile peer could name anyone.
		// Discovery (node/chainsync) keeps Config.TargetPeers instead.
		pubsub.WithRawTracer(n.mesh),
		pubsub.WithRawTracer(newGossipTracer(n.metrics)),
		pubsub.WithRawTracer(n.traces),
		pubsub.WithRawTracer(queueTracer{ids: n.msgIDs}),
		// A peer throttled for blocks it could not have stored has them
		// dropped unread (budget.go).
		pubsub.WithAppSpecificRpcInspector(n.inspectRPC),
		// The library logs routine events at info; keep its warnings only.
		pubsub.WithLogger(slog.New(minLevel{n.log.Handler(), slog.LevelWarn}).With("system", "pubsub")),
		// Room for the largest block, not the library's 1 MiB default.
		pubsub.WithMaxMessageSize(protocol.MaxGossipRPCBytes),
		pubsub.WithGossipSubParams(gossipParams()),
	}
	opts = append(opts, scoreOptions(n.appScore, n.scores)...)
	opts = append(opts, n.cfg.GossipOptions...)
	var err error
	n.ps, err = pubsub.NewGossipSub(n.ctx, n.host, opts...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}
	// Inline: the validator runs on the library's validation workers, in
	// the order messages were named, instead of a goroutine per message
	// (which reorders them: a block's parent would often be checked after
	// it). It blocks only briefly: a signature check or a batch of them
	// (validate_blocks.go checkAhead), an in-memory commit, and at most
	// pendingWait for a parent another worker is checking (pending.go).
	if err := n.ps.RegisterTopicValidator(protocol.TopicBlocks, n.validateBlock, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("register block validator: %w", err)
	}
	if n.topic, err = n.ps.Join(protocol.TopicBlocks); err != nil {
		return fmt.Errorf("join topic %s: %w", protocol.TopicBlocks, err)
	}
	if n.sub, err = n.topic.Subscribe(pubsub.WithBufferSize(subscriptionQueue)); err != nil {
		return fmt.Errorf("subscribe to %s: %w", protocol.TopicBlocks, err)
	}
	n.wg.Add(2)
	go n.drainBlocks()
	go n.relayConnected()
	return nil
}

// drop counts something dropped, for GET /status and the metrics.
func (n *Node) drop(reason string) {
	n.drops.add(reason)
	n.metrics.dropped.WithLabelValues(reason).Inc()
}

// dropBlock counts a gossiped block dropped with verdict ("reject" or
// "ignore") for reason: in /status drops and in both drop metrics.
func (n *Node) dropBlock(verdict, reason string) {
	n.drop(reason)
	n.metrics.blocksDropped.WithLabelValues(verdict, reason).Inc()
}

// dropCounter counts gossip messages dropped, by reason.
type dropCounter struct {
	mu     sync.Mutex // guards counts
	counts map[string]uint64
}

func newDropCounter() *dropCounter { return &dropCounter{counts: map[string]uint64{}} }

func (d *dropCounter) add(reason string) {
	d.mu.Lock()
	d.counts[reason]++
	d.mu.Unlock()
}

func (d *dropCounter) snapshot() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.counts))
	for k, v := range d.counts {
		out[k] = v
	}
	return out
}

// AtLeast returns a handler that passes h the records at level or above:
// a quieter view of one log, for a library that logs routine events
// loudly (GossipSub here, libp2p in the command).
func AtLeast(h slog.Handler, level slog.Level) slog.Handler { return minLevel{h, level} }

// minLevel drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}

// Gossip parameters that differ from the library's (docs/SIMULATION.md,
// "Choosing the gossip parameters", has the figures behind them).
const (
	// meshHigh is the most mesh peers a node keeps (Dhi) before it prunes
	// back to D: 10, not the library's 12. Peers graft onto a node until
	// it has Dhi, so the mesh sits well above D, and every mesh peer
	// beyond the first sends a node a copy of each block it already has.
	// At 1,000 simulated nodes 10 cuts the duplicates by 14% at a p99
	// 1.07x before's; 8 cut them by 28% at 1.11x, with the slowest nodes
	// a third later. D (6) and Dlo (5) stay the library's.
	meshHigh = 10
)

// gossipParams are the GossipSub parameters a node runs with: the
// library's defaults but meshHigh.
//
// IDONTWANT keeps the library's threshold (1 KiB), so a node sends it
// only for blocks of long lines (over about 600 bytes; a block with a
// short line is about 430). Sent for every block (a threshold of 256
// bytes), it spared 3-4% of the
// duplicates in the simulator but is one more message to every mesh peer
// per block, sent before the block is checked: on real processes (10,
// 3,000-block burst, docs/BENCHMARKS.md) it cut the blocks/s from 818 to
// 320 and raised the CPU per block from 2.1 to 5.1 ms.
func gossipParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.Dhi = meshHigh
	return p
}

// meshParams are gossipParams with a mesh degree of d (for
// Config.GossipOptions, via pubsub.WithGossipSubParams): keep
// between d-1 and 2d mesh peers, at least d*2/3 of them by score and up to
// 2 outbound (fewer where the library requires: below d-1 and d/2). The
// library's D=6 is the same: 5..12, 4 and 2 (the node's own keeps at
// most meshHigh). d is 2 or more (GossipSub refuses a mesh of one).
func meshParams(d int) pubsub.GossipSubParams {
	return withMesh(gossipParams(), d, max(1, d-1), 2*d)
}

// withMesh is p with a mesh degree of d, kept between lo and hi, at least
// d*2/3 of it by score (at most hi) and up to 2 outbound (fewer where the
// library requires: below lo and d/2).
func withMesh(p pubsub.GossipSubParams, d, lo, hi int) pubsub.GossipSubParams {
	p.D, p.Dlo, p.Dhi = d, lo, hi
	p.Dscore = min(hi, max(1, d*2/3))
	p.Dout = max(0, min(2, lo-1, d/2-1))
	return p
}

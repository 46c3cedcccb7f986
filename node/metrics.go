package node

import (
	"strconv"
	"strings"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus metrics, on a registry of its own that
// libp2p registers its host and resource-manager metrics on too. GET
// /metrics serves it.
type metrics struct {
	reg *prometheus.Registry

	blocksAdded   *prometheus.CounterVec // origin: local, gossip, sync
	blocksDropped *prometheus.CounterVec // verdict: reject, ignore; reason
	dropped       *prometheus.CounterVec // every counted drop, by reason
	reorgs        prometheus.Counter     //
	reorgDepth    prometheus.Histogram   // blocks that left the main chain
	syncServed    *prometheus.CounterVec // type
	syncMade      *prometheus.CounterVec // type, result
	propagation   prometheus.Histogram   // receipt time - block timestamp
	gossip        *prometheus.CounterVec // GossipSub events, from a RawTracer
	gossipRPC     *prometheus.CounterVec // direction: sent, received, dropped
	gossipControl *prometheus.CounterVec // type, direction: sent, received
	gossipReject  *prometheus.CounterVec // reason: the library's, as a label
	// earlyDuplicate is gossip's "duplicate" for copies dropped before
	// GossipSub read them (copies.go).
	earlyDuplicate prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		blocksAdded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_blocks_added_total",
			Help: "Blocks stored, by origin: local (typed here, or re-appended), gossip, sync.",
		}, []string{"origin"}),
		blocksDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_blocks_dropped_total",
			Help: "Gossiped blocks not accepted, by verdict (reject: the sender broke the protocol; ignore: early or known) and reason.",
		}, []string{"verdict", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_drops_total",
			Help: "Everything dropped (gossip, sync, API), by reason; the same counts as drops in GET /status.",
		}, []string{"reason"}),
		reorgs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gossipchain_reorgs_total",
			Help: "Switches of the main chain to another branch.",
		}),
		reorgDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gossipchain_reorg_depth_blocks",
			Help:    "Main-chain blocks replaced by each reorg.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		syncServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_sync_requests_served_total",
			Help: "Sync requests answered, by type.",
		}, []string{"type"}),
		syncMade: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_sync_requests_made_total",
			Help: "Sync requests sent to peers, by type and result (ok, error).",
		}, []string{"type", "result"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gossipchain_block_propagation_delay_seconds",
			Help:    "Time from a block's timestamp to its arrival here by gossip.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s
		}),
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_gossipsub_messages_total",
			Help: "GossipSub message events on this node: delivered, duplicate, rejected, undeliverable, throttled.",
		}, []string{"event"}),
		gossipRPC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gossipchain_gossipsub_rpcs_total",
			Help: "GossipSub RPCs, by direction: sent, received, dropped (queue full).",
		}, []string{"direction"}),
	}
	m.gossipControl = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gossipchain_gossipsub_control_total",
		Help: "GossipSub control in RPCs, by type and direction (sent, received): message IDs for ihave, iwant and idontwant; messages for graft and prune.",
	}, []string{"type", "direction"})
	m.gossipReject = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gossipchain_gossipsub_rejected_total",
		Help: "GossipSub messages not delivered, by the library's reason: validation_ignored (this node's validator ignored it: gossipchain_drops_total says why), validation_failed, validation_queue_full, validation_throttled, ...",
	}, []string{"reason"})
	m.earlyDuplicate = m.gossip.WithLabelValues("duplicate")
	reg.MustRegister(m.blocksAdded, m.blocksDropped, m.dropped, m.reorgs, m.reorgDepth, m.syncServed, m.syncMade, m.propagation, m.gossip, m.gossipRPC, m.gossipControl, m.gossipReject)
	for _, o := range []string{OriginLocal, OriginGossip, OriginSync} {
		m.blocksAdded.WithLabelValues(o) // 0 before the first: a dashboard shows 0, not "no data"
	}
	registerGauges(reg, n)
	return m
}

// registerGauges registers the Go runtime's and the process's collectors
// and the gauges read from the node when scraped.
func registerGauges(reg *prometheus.Registry, n *Node) {
	reg.MustRegister(buildInfoGauge(), headPrefixGauge(n))
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_chain_height", Help: "Index of the main chain's head."},
			func() float64 { return float64(n.chain.Height()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_orphans", Help: "Blocks held until their parent arrives."},
			func() float64 { return float64(n.chain.Orphans()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_pending_lines", Help: "Lines typed here waiting to be re-appended after a reorg."},
			func() float64 { return float64(n.chain.PendingLines()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_budget_authors", Help: "Authors this node remembers storing blocks by, by state: known (first stored long enough ago to leave the new authors' budget) or new.", ConstLabels: prometheus.Labels{"state": "known"}},
			func() float64 { known, _ := n.budget.authorCounts(); return float64(known) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_budget_authors", Help: "Authors this node remembers storing blocks by, by state: known (first stored long enough ago to leave the new authors' budget) or new.", ConstLabels: prometheus.Labels{"state": "new"}},
			func() float64 { _, fresh := n.budget.authorCounts(); return float64(fresh) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_peers", Help: "Connected peers."},
			func() float64 { return float64(len(n.host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_mesh_peers", Help: "Peers in this node's GossipSub mesh for the blocks topic."},
			func() float64 { return float64(n.MeshPeers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_event_subscribers", Help: "Clients following GET /events."},
			func() float64 { return float64(n.events.subscribers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gossipchain_refused_branches", Help: "Connected peers whose branch this node refuses: it would replace settled history and is not the members' (the network is split)."},
			func() float64 { return float64(len(n.RefusedBranches())) }),
	)
	for _, r := range []string{ReachabilityPublic, ReachabilityPrivate, ReachabilityUnknown} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gossipchain_reachability",
			Help:        "1 for this node's reachability (AutoNAT: public, private, unknown), 0 for the others.",
			ConstLabels: prometheus.Labels{"state": r},
		}, func() float64 {
			if n.reach.name() == r {
				return 1
			}
			return 0
		}))
	}
}

// syncMetrics counts the syncer's requests (chainsync.Metrics).
type syncMetrics struct{ m *metrics }

func (s syncMetrics) RequestMade(kind, result string) {
	s.m.syncMade.WithLabelValues(kind, result).Inc()
}
func (s syncMetrics) RequestServed(kind string) { s.m.syncServed.WithLabelValues(kind).Inc() }

// reorged records a reorg that replaced dropped main-chain blocks.
func (m *metrics) reorged(dropped int) {
	m.reorgs.Inc()
	m.reorgDepth.Observe(float64(dropped))
}

// gossipTracer counts GossipSub events into the metrics; go-libp2p-pubsub
// has no Prometheus metrics of its own. Its counters are looked up once:
// it runs on GossipSub's event loop, several times per copy of a block.
type gossipTracer struct {
	noTrace
	delivered, duplicate, rejected, undeliverable, throttled prometheus.Counter
	received, sent, dropped                                  prometheus.Counter
	controlIn, controlOut                                    controlCounters
	reasons                                                  *prometheus.CounterVec
}

// controlCounters count one direction's GossipSub control.
type controlCounters struct{ ihave, iwant, idontwant, graft, prune prometheus.Counter }

func newGossipTracer(m *metrics) gossipTracer {
	ev, rpc := m.gossip.WithLabelValues, m.gossipRPC.WithLabelValues
	control := func(dir string) controlCounters {
		c := func(kind string) prometheus.Counter { return m.gossipControl.WithLabelValues(kind, dir) }
		return controlCounters{c("ihave"), c("iwant"), c("idontwant"), c("graft"), c("prune")}
	}
	return gossipTracer{
		delivered: ev("delivered"), duplicate: ev("duplicate"), rejected: ev("rejected"),
		undeliverable: ev("undeliverable"), throttled: ev("throttled"),
		received: rpc("received"), sent: rpc("sent"), dropped: rpc("dropped"),
		controlIn: control("received"), controlOut: control("sent"),
		reasons: m.gossipReject,
	}
}

func (t gossipTracer) DeliverMessage(*pubsub.Message)   { t.delivered.Inc() }
func (t gossipTracer) DuplicateMessage(*pubsub.Message) { t.duplicate.Inc() }
func (t gossipTracer) RejectMessage(_ *pubsub.Message, reason string) {
	t.rejected.Inc()
	t.reasons.WithLabelValues(strings.ReplaceAll(reason, " ", "_")).Inc()
}
func (t gossipTracer) UndeliverableMessage(*pubsub.Message) { t.undeliverable.Inc() }
func (t gossipTracer) ThrottlePeer(peer.ID)                 { t.throttled.Inc() }
func (t gossipTracer) DropRPC(*pubsub.RPC, peer.ID)         { t.dropped.Inc() }

func (t gossipTracer) RecvRPC(rpc *pubsub.RPC) {
	t.received.Inc()
	t.controlIn.count(rpc.GetControl())
}

func (t gossipTracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	t.sent.Inc()
	t.controlOut.count(rpc.GetControl())
}

// count adds an RPC's control: the message IDs it announces, asks for or
// declines, and its grafts and prunes.
func (c controlCounters) count(ctl *pb.ControlMessage) {
	if ctl == nil {
		return
	}
	ids := func(n int, to prometheus.Counter) {
		if n > 0 {
			to.Add(float64(n))
		}
	}
	for _, m := range ctl.GetIhave() {
		ids(len(m.GetMessageIDs()), c.ihave)
	}
	for _, m := range ctl.GetIwant() {
		ids(len(m.GetMessageIDs()), c.iwant)
	}
	for _, m := range ctl.GetIdontwant() {
		ids(len(m.GetMessageIDs()), c.idontwant)
	}
	ids(len(ctl.GetGraft()), c.graft)
	ids(len(ctl.GetPrune()), c.prune)
}

// headPrefixGauge is gossipchain_chain_head_prefix: the head's hash as a
// number, its first 48 bits (exact in a float64). Nodes on the same head
// report the same value, so how many heads a network has is a query
// (count(count_values("head", gossipchain_chain_head_prefix))) without a
// label per block.
func headPrefixGauge(n *Node) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gossipchain_chain_head_prefix",
		Help: "The first 48 bits of the head block's hash, as a number: equal on nodes with the same head.",
	}, func() float64 {
		v, _ := strconv.ParseUint(n.chain.Head().Hash[:12], 16, 64)
		return float64(v)
	})
}

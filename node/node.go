package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gossipchain/ledger"
	"gossipchain/node/chainsync"
)

// Node is a running gossipchain node. Create it with New, stop it with Close.
type Node struct {
	cfg        Config
	log        *slog.Logger
	host       host.Host
	chain      *ledger.Chain
	signer     *ledger.Signer
	ps         *pubsub.PubSub
	topic      *pubsub.Topic
	sub        *pubsub.Subscription
	mesh       *meshTracer
	peerNames  peerNames // peers' text for block events
	drops      *dropCounter
	msgIDs     *messageIDs    // IDs of recent gossip messages
	pending    *pendingBlocks // blocks the gossip validator is checking
	scores     *scoreBoard
	metrics    *metrics
	events     *eventHub
	peerNotify network.Notifiee
	alone      atomic.Bool  // the last peer left, none has come back
	dialing    atomic.Int32 // configured peers being dialled right now
	budget     *authorBudget
	traces     *traceBook     // how recent blocks reached this node
	gate       *blocklist     // blocked peers (and Config.Gater)
	reach      *reach         // reachability, hole punches (reach.go)
	onChange   []func(change) // what follows a chain change (chainchange.go)
	refusals   refusals       // peers' branches this node will not adopt

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts

	sync      *chainsync.Syncer  // sync, discovery, trace requests
	republish chan *ledger.Block // stored blocks to relay: connected orphans, a synced head
	reappend  chan struct{}      // lines may be pending after a reorg
	closeOnce sync.Once
	started   bool
}

// New starts a node: it opens the store (failing if another process holds
// it), loads or creates the identity, listens, joins the blocks topic and
// dials the configured peers. The HTTP API (node/httpapi) is served apart.
func New(c Config) (_ *Node, err error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	pending := newPendingBlocks()
	n := &Node{msgIDs: newMessageIDs(pending), pending: pending, cfg: cfg, log: cfg.Logger, drops: newDropCounter(), scores: &scoreBoard{}, republish: make(chan *ledger.Block, ledger.MaxOrphans), reappend: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.budget = newAuthorBudget(cfg.AuthorRate, cfg.AuthorBurst, cfg.Clock)
	n.events = newEventHub()
	n.traces = newTraceBook(nil)
	n.gate = newBlocklist(cfg.Gater)
	n.metrics = newMetrics(n)
	// What follows every change to the chain, in this order (chainchange.go).
	n.onChange = []func(change){n.budgetChange, n.traceChange, n.countChange, n.announceChange, n.syncChange, n.reappendChange, n.relayChange}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	key, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if n.chain, err = openChain(cfg); err != nil {
		return nil, err
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, err
	}
	n.signer = ledger.NewSigner(ed25519.PrivateKey(raw))
	n.reach = newReach(cfg, n.usable)
	if n.host, err = newHost(key, cfg, n.metrics.reg, n.gate, n.reach); err != nil {
		return nil, err
	}
	if err := n.reach.start(n.ctx, n.host, &n.wg, n.reachabilityChanged); err != nil {
		return nil, err
	}
	if mdnsOn(cfg) {
		if err := n.startMDNS(); err != nil {
			return nil, fmt.Errorf("mDNS: %w", err)
		}
	}
	if !cfg.DisableRememberedPeers && cfg.Transports == nil {
		if err := n.rememberPeers(loadPeerBook(cfg.DataDir, n.log)); err != nil {
			return nil, err
		}
	}
	n.peerNotify = n.watchPeers()
	n.sync = chainsync.New(chainsync.Deps{
		Host: n.host, Chain: n.chain, Log: n.log, Timeout: cfg.SyncTimeout, Now: cfg.Clock,
		ConnLow: connLow, DialTimeout: dialTimeout, TargetPeers: cfg.TargetPeers,
		Drop: n.drop, Metrics: syncMetrics{n.metrics},
		Budget: n.budget, Score: n.scores.get,
		Dialing: func() int { return int(n.dialing.Load()) },
		Added: func(res ledger.Result, from peer.ID) {
			n.changed(change{res: res, origin: OriginSync, from: from})
		},
		Trace:    n.traces.get,
		Report:   n.reportSync,
		Relay:    n.relayHead,
		Reappend: n.wakeReappend,
		Refused:  n.refusedBranch,
	})
	n.sync.Start()
	n.budget.know(append([]string{n.signer.ID()}, cfg.Authors...)...)
	if err := n.startGossip(); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go n.reappendLoop()
	n.wakeReappend()
	for _, pi := range cfg.Peers {
		n.keepConnected(pi)
	}
	n.started = true
	n.log.Info("node started", "id", n.ID(), "addr", n.Addr(), "height", n.chain.Height(), "data", cfg.DataDir)
	return n, nil
}

// openChain opens the chain store in cfg's data dir with cfg's rules.
func openChain(cfg Config) (*ledger.Chain, error) {
	opts := []ledger.Option{ledger.WithFinality(cfg.Finality), ledger.WithClock(cfg.Clock)}
	if cfg.Authors != nil {
		opts = append(opts, ledger.WithAuthors(cfg.Authors))
	}
	chain, err := ledger.Open(filepath.Join(cfg.DataDir, chainFile), append(opts, cfg.ChainOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("open chain in %s: %w", cfg.DataDir, err)
	}
	return chain, nil
}

// reportSync publishes a sync's progress as an event.
func (n *Node) reportSync(p SyncProgress) {
	n.events.publish(Event{Type: "sync", Sync: &p})
}

// relayHead publishes the head a sync reached: peers behind this node that
// got its gossip first ignored it, and learn of it this way. It is not
// announced as an arrival (the sync's events did).
func (n *Node) relayHead(b *ledger.Block) {
	select {
	case n.republish <- b:
	default:
	}
}

// Close stops the node: API, gossip, connections and store, waiting for every
// goroutine it started. It is safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.cancel()
		n.events.close()
		if n.peerNotify != nil {
			n.host.Network().StopNotify(n.peerNotify)
		}
		if n.sync != nil {
			n.sync.Close()
		}
		if n.sub != nil {
			n.sub.Cancel()
		}
		if n.topic != nil {
			n.topic.Close()
		}
		if n.host != nil {
			err = n.host.Close()
		}
		n.wg.Wait()
		if n.chain != nil {
			if cerr := n.chain.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		if n.started {
			n.log.Info("node stopped", "id", n.ID())
		}
	})
	return err
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Chain returns the node's chain.
func (n *Node) Chain() *ledger.Chain { return n.chain }

// Addrs returns the node's full dialable addresses, /p2p/<id> included.
// Announced addresses come as given; otherwise the addresses other
// machines can dial directly come first, then relayed ones (behind NAT),
// then loopback ones, and within each TCP before QUIC, so that a program
// taking the first address gets one every node can dial (a --psk node has
// no QUIC).
func (n *Node) Addrs() []ma.Multiaddr {
	own := slices.Clone(n.host.Addrs())
	if len(n.cfg.Announce) == 0 {
		rank := func(a ma.Multiaddr) int {
			switch {
			case manet.IsIPLoopback(a):
				return 2
			case isRelayed(a):
				return 1
			}
			return 0
		}
		slices.SortStableFunc(own, func(a, b ma.Multiaddr) int {
			if c := rank(a) - rank(b); c != 0 {
				return c
			}
			return cmpBool(isQUIC(a), isQUIC(b))
		})
	}
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: own})
	return addrs
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Addr returns the node's first full address, the one to give to peers.
func (n *Node) Addr() ma.Multiaddr {
	if a := n.Addrs(); len(a) > 0 {
		return a[0]
	}
	return nil
}

// Published says how a locally appended block went out.
type Published struct {
	Block *ledger.Block
	// TopicPeers is how many peers it was sent to; 0 means none were
	// subscribed yet and the block is only held locally for now.
	TopicPeers int
}

// Append makes data a new block on the head, publishes it and returns once
// it is on disk. The block is stored (and so returned) even if publishing
// finds no peer.
func (n *Node) Append(ctx context.Context, data string) (Published, error) {
	r, err := n.Post(ctx, data)
	if err != nil {
		return Published{}, err
	}
	return r.Wait()
}

// Receipt is a block this node has signed, added and published, on its way
// to disk.
type Receipt struct {
	Published
	res  ledger.Result
	perr error
	once sync.Once
	err  error
}

// Post makes data a new block on the head and publishes it without waiting
// for the disk: a writer with many lines posts them one after another and
// waits on the receipts (in order) meanwhile, and the node writes them with
// few fsyncs. Nothing is acknowledged until Wait says so.
func (n *Node) Post(ctx context.Context, data string) (*Receipt, error) {
	if n.ctx.Err() != nil {
		return nil, ledger.ErrClosed
	}
	// Own lines obey the author budget by waiting (budget.go).
	if err := n.budget.wait(ctx, n.signer.ID()); err != nil {
		return nil, err
	}
	res, err := n.chain.Append(n.signer, data)
	if err != nil {
		return nil, err
	}
	n.changed(change{res: res, origin: OriginLocal})
	b := res.Added[0]
	// Out first, then acknowledged once on disk: the fsync overlaps the
	// first hop.
	return &Receipt{
		Published: Published{Block: b, TopicPeers: len(n.topic.ListPeers())},
		res:       res,
		perr:      n.publish(ctx, b),
	}, nil
}

// Wait returns once the block is on disk: an error means it is not stored
// (and Published is empty), or stored but not published.
func (r *Receipt) Wait() (Published, error) {
	r.once.Do(func() { r.err = r.res.Wait() })
	if r.err != nil {
		return Published{}, fmt.Errorf("block %d not stored: %w", r.Block.Index, r.err)
	}
	if r.perr != nil {
		return r.Published, fmt.Errorf("block %d stored but not published: %w", r.Block.Index, r.perr)
	}
	return r.Published, nil
}

// Connect dials addr (a multiaddr ending in /p2p/<id>) once: a direct
// address even if a relayed connection to the peer is open.
func (n *Node) Connect(ctx context.Context, addr ma.Multiaddr) (peer.ID, error) {
	pi, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return "", fmt.Errorf("address %s: %v", addr, err)
	}
	if pi.ID == n.ID() {
		return "", fmt.Errorf("address %s is this node", addr)
	}
	if err := n.host.Connect(directDial(ctx, pi.Addrs), *pi); err != nil {
		return "", fmt.Errorf("connect to %s: %w", addr, err)
	}
	return pi.ID, nil
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// Direction is "inbound" or "outbound": who dialled.
	Direction string `json:"direction"`
	// Agent is the program the peer says it runs (libp2p identify), e.g.
	// gossipchain/v1.2.0; "" until it has said.
	Agent string `json:"agent"`
	// Mesh reports whether the peer is in this node's GossipSub mesh for blocks.
	Mesh bool `json:"mesh"`
	// Score is the peer's GossipSub score, once scored: below
	// GraylistThreshold (-400) everything it sends is ignored.
	Score *float64 `json:"score,omitempty"`
	// Head is the head the peer last reported (head exchange, or a block
	// it relayed), so a user sees who is behind.
	Head *PeerHead `json:"head,omitempty"`
	// LatencyMS is the smoothed round-trip time to the peer, once measured.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// Conns are the open connections to the peer (Addrs and Direction
	// describe them too, and stay for older clients).
	Conns []ConnInfo `json:"conns"`
}

// ConnInfo describes one connection to a peer.
type ConnInfo struct {
	Addr      string `json:"addr"`
	Direction string `json:"direction"`
	// Kind is "direct", or "relayed": through a relay, a limited
	// connection that carries only the hole punch that replaces it
	// (docs/PROTOCOL.md, "Connections").
	Kind string `json:"kind"`
	// Transport is "tcp" or "quic": of the connection, or of the hop to
	// the relay for a relayed one.
	Transport string `json:"transport"`
	// HolePunched is set on a direct connection that hole punching
	// (DCUtR) made.
	HolePunched bool `json:"hole_punched,omitempty"`
}

// PeerHead is a peer's head as it reported it.
type PeerHead struct {
	Height uint64 `json:"height"`
	Head   string `json:"head"`
}

// Peers returns the connected peers.
func (n *Node) Peers() []PeerInfo {
	var out []PeerInfo
	mesh := n.mesh.peers()
	for _, p := range n.host.Network().Peers() {
		pi := PeerInfo{ID: p.String(), Mesh: mesh[p], Addrs: []string{}, Conns: []ConnInfo{}}
		if s, ok := n.scores.get(p); ok {
			pi.Score = &s
		}
		pi.Agent = n.agent(p)
		if st, ok := n.sync.Head(p); ok {
			pi.Head = &PeerHead{Height: st.Height, Head: st.Head}
		}
		if rtt := n.host.Peerstore().LatencyEWMA(p); rtt > 0 {
			pi.LatencyMS = float64(rtt.Microseconds()) / 1000
		}
		for _, c := range n.host.Network().ConnsToPeer(p) {
			ci := n.connInfo(c)
			pi.Addrs = append(pi.Addrs, ci.Addr)
			pi.Direction = ci.Direction
			pi.Conns = append(pi.Conns, ci)
		}
		out = append(out, pi)
	}
	return out
}

// maxAgent bounds a peer's user agent as this node shows it, in runes.
const maxAgent = 64

// agent returns the user agent p sent in libp2p's identify exchange, ""
// if none yet. It is the peer's to choose: shown only printable, and
// short, so that no peer writes escape codes on a console.
func (n *Node) agent(p peer.ID) string {
	v, err := n.host.Peerstore().Get(p, "AgentVersion")
	if err != nil {
		return ""
	}
	s, _ := v.(string)
	var b strings.Builder
	for i, r := range []rune(s) {
		if i == maxAgent {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// MeshPeers returns how many connected peers are in the blocks mesh.
func (n *Node) MeshPeers() int {
	count := 0
	for p := range n.mesh.peers() {
		if n.host.Network().Connectedness(p) == network.Connected {
			count++
		}
	}
	return count
}

// PeerScore returns p's GossipSub score as last computed (once a second),
// and whether it has one.
func (n *Node) PeerScore(p peer.ID) (float64, bool) { return n.scores.get(p) }

// MetricsHandler serves the node's Prometheus registry (GET /metrics):
// gossipchain's metrics, libp2p's and the Go runtime's.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// CountDrop counts something refused under reason, with the node's own
// drops (GET /status "drops"): the HTTP API's refusals.
func (n *Node) CountDrop(reason string) { n.drop(reason) }

// Drops returns how many things the node refused, by reason: gossip
// messages rejected or ignored, sync answers and requests, API requests
// (CountDrop).
func (n *Node) Drops() map[string]uint64 { return n.drops.snapshot() }

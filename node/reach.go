package node

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// Reachability and NAT traversal: what the node knows about being dialled,
// and the node-side parts of the relay and hole-punching options that
// host.go chooses.
//
// A node asks its peers whether it can be dialled (AutoNAT v1 for the
// verdict that drives the rest, AutoNAT v2 for each address) and answers
// theirs. One found public offers a circuit relay v2 service with bounded
// resources (relayResources), refused to blocked and graylisted peers
// (relayACL). The node runs it itself, on its own verdict: libp2p's relay
// manager waits for AutoNAT v1 alone, which in a small network may never
// answer (v1 servers stop answering once they find themselves private, as
// every node behind NAT does), while AutoNAT v2 confirms the address. One found private reserves a slot on a relay it knows
// (relayCandidates: its configured peers, then connected peers offering
// the service) and advertises the relayed address; a peer that dials it
// there gets a limited connection, over which hole punching (DCUtR)
// makes a direct one.
//
// Gossip and sync use direct connections only (docs/PROTOCOL.md,
// "Connections"): a relayed one is used for the hole punch alone.

// Reachability values (Status.Reachability, Config.Reachability).
const (
	ReachabilityUnknown = "unknown"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

// reachabilityName is r as gossipchain names it.
func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return ReachabilityPublic
	case network.ReachabilityPrivate:
		return ReachabilityPrivate
	}
	return ReachabilityUnknown
}

// punchRemembered bounds the peers whose last hole punch is remembered;
// punchSlack is how far before a punch started, or after it ended, a
// direct connection still counts as made by it.
const (
	punchRemembered = 1024
	punchSlack      = time.Second
)

// reach follows the host's reachability and its hole punches. It is built
// before the host (the hole-punch tracer and the relay peer source are
// host options) and started once the host is.
type reach struct {
	host   atomic.Pointer[host.Host] // set by start
	static []peer.AddrInfo           // configured peers: relay candidates first
	forced string                    // Config.Reachability
	usable func(peer.ID) bool        // not blocked, not graylisted (Node.usable)

	mu          sync.Mutex // guards the fields below
	verdict     network.Reachability
	reachable   []ma.Multiaddr // confirmed by AutoNAT v2
	unreachable []ma.Multiaddr
	punches     map[peer.ID]punch // the last successful hole punch with each peer
	retries     map[peer.ID]int   // punches retried with each peer (retryPunches)
	onChange    func(string)      // told the new reachability

	// relayOpts configure the relay service (nil: none); relay runs
	// while the node is public. Only the goroutine of start uses them.
	relayOpts []relayv2.Option
	relay     *relayv2.Relay
	log       *slog.Logger
}

// punch is when a successful hole punch ran.
type punch struct{ start, end time.Time }

func newReach(cfg Config, usable func(peer.ID) bool) *reach {
	return &reach{static: cfg.Peers, forced: cfg.Reachability, usable: usable, punches: map[peer.ID]punch{}, retries: map[peer.ID]int{}, log: cfg.Logger}
}

// start follows h's reachability events until ctx ends, calling onChange
// (from that goroutine) whenever the verdict changes.
func (r *reach) start(ctx context.Context, h host.Host, wg *sync.WaitGroup, onChange func(string)) error {
	r.host.Store(&h)
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtHostReachableAddrsChanged)})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.onChange = onChange
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sub.Close()
		defer r.serveRelay(h, false)
		r.serveRelay(h, r.name() == ReachabilityPublic) // taken as public (Config.Reachability)
		retry := time.NewTicker(punchRetryEvery)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-sub.Out():
				r.note(h, e)
			case <-retry.C:
				r.retryPunches(h)
			}
		}
	}()
	return nil
}

func (r *reach) note(h host.Host, e any) {
	r.mu.Lock()
	before := r.nameLocked()
	switch e := e.(type) {
	case event.EvtLocalReachabilityChanged:
		r.verdict = e.Reachability
	case event.EvtHostReachableAddrsChanged:
		r.reachable, r.unreachable = slices.Clone(e.Reachable), slices.Clone(e.Unreachable)
	}
	after, onChange := r.nameLocked(), r.onChange
	r.mu.Unlock()
	if after == before {
		return
	}
	r.serveRelay(h, after == ReachabilityPublic)
	if onChange != nil {
		onChange(after)
	}
}

// serveRelay starts or stops the relay service.
func (r *reach) serveRelay(h host.Host, on bool) {
	switch {
	case on && r.relay == nil && r.relayOpts != nil:
		relay, err := relayv2.New(h, r.relayOpts...)
		if err != nil {
			r.log.Warn("relay service not started", "err", err)
			return
		}
		r.relay = relay
		r.log.Info("relay service started: relaying for nodes behind NAT")
	case !on && r.relay != nil:
		r.relay.Close()
		r.relay = nil
	}
}

// name is the node's reachability: public if AutoNAT found it dialable,
// or AutoNAT v2 confirmed one of its addresses; private if AutoNAT found
// it cannot be dialled; unknown until then (and for good on a node with
// no public address, such as one on loopback or a LAN).
func (r *reach) name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nameLocked()
}

func (r *reach) nameLocked() string {
	if r.forced != "" {
		return r.forced
	}
	if len(r.reachable) > 0 {
		return ReachabilityPublic
	}
	return reachabilityName(r.verdict)
}

// confirmed returns the addresses AutoNAT v2 found reachable and
// unreachable.
func (r *reach) confirmed() (reachable, unreachable []ma.Multiaddr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reachable), slices.Clone(r.unreachable)
}

// Trace is the hole-punch tracer: it remembers successful punches, so
// that /peers can tell a hole-punched connection from a dialled one.
func (r *reach) Trace(e *holepunch.Event) {
	end, ok := e.Evt.(*holepunch.EndHolePunchEvt)
	if !ok || !end.Success {
		return
	}
	at := time.Unix(0, e.Timestamp)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.punches[e.Remote]; !known && len(r.punches) >= punchRemembered {
		for p := range r.punches { // forget one at random
			delete(r.punches, p)
			break
		}
	}
	r.punches[e.Remote] = punch{start: at.Add(-end.EllapsedTime), end: at}
}

// Hole punch retries. DCUtR runs when a relayed connection opens, and
// gives up after three attempts a few seconds apart; one that failed (a
// busy machine missed the synchronised start, a router's mapping came
// late) would leave the two peers relayed for good, and relayed
// connections carry neither gossip nor sync. A peer reached only through
// relays for punchRetryAfter is disconnected, so that the next connection
// to it (discovery finds it again through the relay) opens relayed and
// punches again, at most punchRetries times per peer: behind a NAT that
// maps every destination to a new port no punch works, and the peers stay
// relayed.
const (
	punchRetryEvery = 5 * time.Second
	punchRetryAfter = 15 * time.Second
	punchRetries    = 3
)

// retryPunches disconnects the peers reached only through relays for
// punchRetryAfter whose punches have not been retried punchRetries times.
func (r *reach) retryPunches(h host.Host) {
	nw := h.Network()
	for _, p := range nw.Peers() {
		oldest, relayedOnly := time.Now(), true
		for _, c := range nw.ConnsToPeer(p) {
			if !isRelayed(c.RemoteMultiaddr()) {
				relayedOnly = false
				break
			}
			if o := c.Stat().Opened; o.Before(oldest) {
				oldest = o
			}
		}
		if !relayedOnly || time.Since(oldest) < punchRetryAfter {
			continue
		}
		r.mu.Lock()
		tries := r.retries[p]
		if tries < punchRetries {
			if len(r.retries) >= punchRemembered {
				clear(r.retries)
			}
			r.retries[p] = tries + 1
		}
		r.mu.Unlock()
		if tries >= punchRetries {
			continue
		}
		r.log.Info("no direct connection to a peer reached through a relay; reconnecting to punch again", "peer", p, "try", tries+1)
		nw.ClosePeer(p)
	}
}

// punched reports whether a direct connection to p opened at opened was
// made by a hole punch.
func (r *reach) punched(p peer.ID, opened time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	pu, ok := r.punches[p]
	return ok && !opened.Before(pu.start.Add(-punchSlack)) && !opened.After(pu.end.Add(punchSlack))
}

// relayHop is the circuit relay v2 protocol a relay serves.
const relayHop = "/libp2p/circuit/relay/0.2.0/hop"

// relayCandidates is the auto-relay peer source: up to num relays to ask
// for a slot, the configured peers first (in order), then, at random,
// connected peers that offer the relay service. Blocked and graylisted
// peers are never candidates.
func (r *reach) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	hp := r.host.Load()
	if hp == nil {
		return out
	}
	h := *hp
	seen := map[peer.ID]bool{h.ID(): true}
	add := func(pi peer.AddrInfo) {
		if len(out) < num && !seen[pi.ID] && r.usable(pi.ID) && ctx.Err() == nil {
			seen[pi.ID] = true
			out <- pi
		}
	}
	for _, pi := range r.static {
		add(pi)
	}
	connected := h.Network().Peers()
	rand.Shuffle(len(connected), func(i, j int) { connected[i], connected[j] = connected[j], connected[i] })
	for _, p := range connected {
		if h.Network().Connectedness(p) != network.Connected {
			continue // only over a relay itself: no relay for others
		}
		if ps, err := h.Peerstore().SupportsProtocols(p, relayHop); err == nil && len(ps) > 0 {
			add(h.Peerstore().PeerInfo(p))
		}
	}
	return out
}

// relayACL refuses relay reservations and circuits to peers the node
// does not serve: blocked or graylisted. (A blocked peer cannot even
// connect: the gater refuses it.)
type relayACL struct{ usable func(peer.ID) bool }

func (a relayACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.usable(p) }

func (a relayACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.usable(src) && a.usable(dest)
}

// usable reports whether the node serves p as a relay or takes it as
// one: p is not blocked, and not graylisted in gossip.
func (n *Node) usable(p peer.ID) bool {
	if n.gate.blocked(p) {
		return false
	}
	s, ok := n.scores.get(p)
	return !ok || s >= GraylistThreshold
}

// reachabilityChanged reports a new reachability verdict.
func (n *Node) reachabilityChanged(r string) {
	switch r {
	case ReachabilityPrivate:
		n.log.Info("reachability: private (behind NAT): reserving a relay slot, hole punching to peers")
	default:
		n.log.Info("reachability: " + r)
	}
	n.events.publish(Event{Type: "reachability", Reachability: r})
}

// Connection kinds (ConnInfo.Kind).
const (
	ConnDirect  = "direct"
	ConnRelayed = "relayed"
)

// connInfo describes c: how it was made.
func (n *Node) connInfo(c network.Conn) ConnInfo {
	st := c.Stat()
	addr := c.RemoteMultiaddr()
	ci := ConnInfo{
		Addr:      addr.String(),
		Direction: strings.ToLower(st.Direction.String()),
		Kind:      ConnDirect,
		Transport: "tcp",
	}
	if isQUIC(addr) {
		ci.Transport = "quic"
	}
	if isRelayed(addr) || st.Limited {
		ci.Kind = ConnRelayed
	} else {
		ci.HolePunched = n.reach.punched(c.RemotePeer(), st.Opened)
	}
	return ci
}

// isRelayed reports whether a goes through a relay (/p2p-circuit).
func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// directDial is ctx for dialling addrs: if one of them is direct, a
// relayed connection to the peer does not count as connected, and the
// direct addresses are dialled (libp2p would return the relayed
// connection).
func directDial(ctx context.Context, addrs []ma.Multiaddr) context.Context {
	if slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool { return !isRelayed(a) }) {
		return network.WithForceDirectDial(ctx, "direct address given")
	}
	return ctx
}

// connectedTo reports whether nw has as good a connection to pi as its
// addresses allow: a direct one, or a relayed one if they are all relayed.
func connectedTo(nw network.Network, pi peer.AddrInfo) bool {
	switch nw.Connectedness(pi.ID) {
	case network.Connected:
		return true
	case network.Limited:
		return !slices.ContainsFunc(pi.Addrs, func(a ma.Multiaddr) bool { return !isRelayed(a) })
	}
	return false
}

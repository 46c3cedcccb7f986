package chainsync

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/protocol"
)

// Discovery. A node given one bootstrap peer asks its peers whom they are
// connected to (a "peers" request on the sync protocol) and dials some of
// them until it has TargetPeers connections, so the GossipSub mesh can form
// among many peers and survives the bootstrap peer leaving. GossipSub's own
// peer exchange (on PRUNE) is off (node/gossip.go): it only reaches a peer
// that a full mesh prunes, and then connects it to up to 16 more.
//
// Discovery hands out, and dials, only peers it has no reason to distrust
// (trusted): a graylisted or merely negatively scored peer, one banned from
// sync, or one whose gossip this node rejected lately is neither named to
// others nor dialled when another peer names it. It names only members:
// peers that told this node a status with its genesis over the sync
// protocol, so a host that only speaks GossipSub (or is on another network)
// is never spread.
const (
	// TargetPeers is how many connections discovery looks for unless told
	// otherwise (Deps.TargetPeers, a node's --target-peers); a node with
	// as many dials its configured peers only now and then.
	TargetPeers   = 8
	discoverEvery = 5 * time.Second
	maxDialsRound = 4
	// distrustFor is how long a peer whose gossip was rejected is not
	// handed out or dialled (GossipSub's penalty decays over an hour; the
	// score snapshot lags by up to node/score.go's scoreInspectEvery).
	distrustFor = 10 * time.Minute
	// maxRejected bounds the peers remembered for rejected gossip.
	maxRejected = 4096

	// A member lost while this node had fewer than Deps.ConnLow connections
	// (so not trimmed by this node's own connection manager) is dialled
	// again, backing off from lostRedialMin to lostRedialMax, for up to
	// lostFor: a network partition or an outage heals by itself, even
	// where every node kept TargetPeers on its own side meanwhile (the
	// simulator's 40-node partition of a minute took 32 s to heal without
	// it). A peer lost again after it came back is left alone: it trimmed
	// this node, or it flaps. Configured peers (ConfiguredTag) the node
	// redials itself, by a rule of its own.
	lostFor       = 10 * time.Minute
	lostRedialMin = time.Second
	lostRedialMax = 8 * time.Second
	maxLost       = 256
)

// ConfiguredTag protects configured peers in the connection manager, and
// tells discovery they are not its to redial: the node keeps them
// connected itself.
const ConfiguredTag = "configured-peer"

// lostPeer is a member this node lost and dials again.
type lostPeer struct {
	info    peer.AddrInfo
	since   time.Time
	next    time.Time
	wait    time.Duration
	dialing bool
	// back: it came back once since it was first lost; lost again, it is
	// left alone until lostFor has passed.
	back bool
}

// discovery is the component that does it. It is built from what it needs
// (discoveryDeps), owns its goroutine, and refuses work after stop.
type discovery struct {
	discoveryDeps
	mu     sync.Mutex
	lost   map[peer.ID]*lostPeer
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// discoveryDeps is what discovery needs from the rest of the node.
type discoveryDeps struct {
	host host.Host
	log  *slog.Logger
	// askPeers asks p for the peers it is connected to (a sync request).
	askPeers func(ctx context.Context, p peer.ID) (protocol.PeersAnswer, error)
	// member reports whether p gave a status with this node's genesis;
	// trusted whether this node has no reason to distrust p.
	member, trusted func(peer.ID) bool
	// dialing is how many configured peers are being dialled right now:
	// connections this node is about to have.
	dialing func() int
	// connLow is the connection manager's low water mark (Deps.ConnLow);
	// dialTimeout bounds each dial.
	connLow     int
	dialTimeout time.Duration
	// target is how many connections a round looks for (Deps.TargetPeers:
	// 0 means TargetPeers, a negative number none).
	target int
}

func newDiscovery(deps discoveryDeps) *discovery {
	if deps.target == 0 {
		deps.target = TargetPeers
	}
	d := &discovery{discoveryDeps: deps, wake: make(chan struct{}, 1), lost: map[peer.ID]*lostPeer{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// start runs rounds at once, whenever poked and every discoverEvery, and
// dials lost peers when they are due.
func (d *discovery) start() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		tick := time.NewTicker(discoverEvery)
		defer tick.Stop()
		back := time.NewTicker(lostRedialMin)
		defer back.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-back.C:
				d.returnToLost()
				continue
			case <-tick.C:
			case <-d.wake:
			}
			d.round()
		}
	}()
}

// disconnected is told that p's last connection closed; wasMember whether
// p had been a member. A member lost while this node is below connLow is
// dialled again (lostFor).
func (d *discovery) disconnected(p peer.ID, wasMember bool) {
	if d.ctx.Err() != nil || !wasMember || d.host.ConnManager().IsProtected(p, ConfiguredTag) {
		return
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if lp, ok := d.lost[p]; ok {
		if lp.back {
			lp.next = lp.since.Add(lostFor) // lost again: left alone
		}
		return
	}
	if len(d.host.Network().Peers()) >= d.connLow || len(d.lost) >= maxLost || !d.trusted(p) {
		return
	}
	addrs := d.host.Peerstore().Addrs(p)
	if len(addrs) == 0 {
		return
	}
	d.lost[p] = &lostPeer{info: peer.AddrInfo{ID: p, Addrs: addrs}, since: now, next: now.Add(lostRedialMin), wait: lostRedialMin}
}

// returnToLost dials the lost peers that are due, and forgets those lost
// for lostFor.
func (d *discovery) returnToLost() {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, lp := range d.lost {
		switch {
		case now.Sub(lp.since) >= lostFor:
			delete(d.lost, id)
		case d.host.Network().Connectedness(id) == network.Connected:
			lp.back = true
		case lp.dialing || now.Before(lp.next) || !d.trusted(id):
		default:
			lp.dialing = true
			lp.next = now.Add(lp.wait/2 + rand.N(lp.wait/2+1))
			lp.wait = min(2*lp.wait, lostRedialMax)
			d.wg.Add(1)
			go d.dialLost(lp)
		}
	}
}

func (d *discovery) dialLost(lp *lostPeer) {
	defer d.wg.Done()
	ctx, cancel := context.WithTimeout(d.ctx, d.dialTimeout)
	err := d.host.Connect(ctx, lp.info)
	cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	lp.dialing = false
	if err == nil {
		lp.back = true
		d.log.Debug("lost peer back", "peer", lp.info.ID, "after", time.Since(lp.since).Round(time.Millisecond))
	}
}

// stop ends the rounds and waits for the one running.
func (d *discovery) stop() {
	d.cancel()
	d.wg.Wait()
}

// poke asks for a round soon (a connection came while below target).
func (d *discovery) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// round asks one random peer for its peers and dials a few this node is
// not connected to.
func (d *discovery) round() {
	nw := d.host.Network()
	connected := nw.Peers()
	need := d.target - len(connected) - d.dialing()
	if need <= 0 || len(connected) == 0 || d.ctx.Err() != nil {
		return
	}
	from := connected[rand.N(len(connected))]
	answer, err := d.askPeers(d.ctx, from)
	if err != nil {
		d.log.Debug("peers request failed", "peer", from, "err", err)
		return
	}
	candidates := d.candidates(answer)
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	for _, pi := range candidates[:min(len(candidates), need, maxDialsRound)] {
		ctx, cancel := context.WithTimeout(d.ctx, d.dialTimeout)
		err := d.host.Connect(ctx, pi)
		cancel()
		if err != nil {
			d.log.Debug("discovered peer unreachable", "peer", pi.ID, "err", err)
		}
	}
}

// candidates turns a peers answer into peers worth dialling: well-formed,
// not this node, not connected, trusted.
func (d *discovery) candidates(a protocol.PeersAnswer) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, pa := range a.Peers[:min(len(a.Peers), protocol.MaxPeersPerAnswer)] {
		id, err := peer.Decode(pa.ID)
		if err != nil || id == d.host.ID() || d.host.Network().Connectedness(id) == network.Connected || !d.trusted(id) {
			continue
		}
		pi := peer.AddrInfo{ID: id}
		for _, a := range pa.Addrs[:min(len(pa.Addrs), protocol.MaxAddrsPerPeer)] {
			if m, err := ma.NewMultiaddr(a); err == nil {
				pi.Addrs = append(pi.Addrs, m)
			}
		}
		if len(pi.Addrs) > 0 {
			out = append(out, pi)
		}
	}
	return out
}

// answer lists some of this node's connected peers for asker: members it
// trusts, never asker itself.
func (d *discovery) answer(asker peer.ID) protocol.PeersAnswer {
	ps := d.host.Peerstore()
	ids := d.host.Network().Peers()
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	answer := protocol.PeersAnswer{Peers: []protocol.PeerAddrs{}}
	for _, id := range ids {
		if id == asker || !d.member(id) || !d.trusted(id) {
			continue
		}
		pa := protocol.PeerAddrs{ID: id.String()}
		for _, a := range ps.Addrs(id) {
			if len(pa.Addrs) < protocol.MaxAddrsPerPeer {
				pa.Addrs = append(pa.Addrs, a.String())
			}
		}
		if len(pa.Addrs) > 0 {
			answer.Peers = append(answer.Peers, pa)
		}
		if len(answer.Peers) == protocol.MaxPeersPerAnswer {
			break
		}
	}
	return answer
}

package node

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
// them until it has targetPeers connections, so the GossipSub mesh can form
// among many peers and survives the bootstrap peer leaving. GossipSub's own
// peer exchange (on PRUNE) is off (see gossip.go): it only reaches a peer
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
	targetPeers   = 8
	discoverEvery = 5 * time.Second
	maxDialsRound = 4
	// distrustFor is how long a peer whose gossip was rejected is not
	// handed out or dialled (GossipSub's penalty decays over an hour; the
	// score snapshot lags by up to scoreInspectEvery).
	distrustFor = 10 * time.Minute
	// maxRejected bounds the peers remembered for rejected gossip.
	maxRejected = 4096
)

// discovery is the component that does it. It is built from what it needs
// (discoveryDeps), owns its goroutine, and refuses work after stop.
type discovery struct {
	discoveryDeps
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
}

func newDiscovery(deps discoveryDeps) *discovery {
	d := &discovery{discoveryDeps: deps, wake: make(chan struct{}, 1)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// start runs rounds at once, whenever poked and every discoverEvery.
func (d *discovery) start() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		tick := time.NewTicker(discoverEvery)
		defer tick.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-tick.C:
			case <-d.wake:
			}
			d.round()
		}
	}()
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
	need := targetPeers - len(connected) - d.dialing()
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
		ctx, cancel := context.WithTimeout(d.ctx, dialTimeout)
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

// askPeers is discovery's way to ask p for its peers: a sync request.
func (s *syncer) askPeers(_ context.Context, p peer.ID) (protocol.PeersAnswer, error) {
	var answer protocol.PeersAnswer
	err := s.call(p, &protocol.Request{Type: protocol.RequestPeers}, func(r *frameReader) error {
		return r.json(protocol.MaxPeersAnswerBytes, &answer)
	})
	return answer, err
}

// trusted reports whether this node has no reason to distrust p: its
// GossipSub score (if it has one yet) is not below zero, it is not banned
// from sync, and none of its gossip was rejected in the last distrustFor.
func (s *syncer) trusted(p peer.ID) bool {
	if score, ok := s.score(p); ok && score < 0 {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.banned[p]; ok && now.Before(b.until) {
		return false
	}
	if at, ok := s.rejected[p]; ok && now.Sub(at) < distrustFor {
		return false
	}
	return true
}

// member reports whether p, connected, gave this node a status with its
// genesis.
func (s *syncer) member(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[p]
}

// rejectedFrom notes that p sent gossip this node rejected.
func (s *syncer) rejectedFrom(p peer.ID) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rejected[p]; !ok && len(s.rejected) >= maxRejected {
		for k, at := range s.rejected {
			if now.Sub(at) >= distrustFor {
				delete(s.rejected, k)
			}
		}
		if len(s.rejected) >= maxRejected {
			return // every entry is fresh: the peers known are distrusted still
		}
	}
	s.rejected[p] = now
}

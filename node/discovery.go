package node

import (
	"context"
	"math/rand/v2"
	"time"

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

// discoverLoop keeps the peer count up to targetPeers: at start, whenever
// a connection is made while below it, and every discoverEvery.
func (s *syncer) discoverLoop() {
	defer s.n.wg.Done()
	tick := time.NewTicker(discoverEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			return
		case <-tick.C:
		case <-s.discover:
		}
		s.discoverRound()
	}
}

func (s *syncer) wakeDiscovery() {
	select {
	case s.discover <- struct{}{}:
	default:
	}
}

// discoverRound asks one random peer for its peers and dials a few this
// node is not connected to.
func (s *syncer) discoverRound() {
	nw := s.n.host.Network()
	connected := nw.Peers()
	// Configured peers still being dialled count: at start they are the
	// connections this node is about to have.
	need := targetPeers - len(connected) - int(s.n.dialing.Load())
	if need <= 0 || len(connected) == 0 {
		return
	}
	from := connected[rand.N(len(connected))]
	var answer protocol.PeersAnswer
	err := s.call(from, &protocol.Request{Type: protocol.RequestPeers}, func(r *frameReader) error {
		return r.json(protocol.MaxPeersAnswerBytes, &answer)
	})
	if err != nil {
		s.n.log.Debug("peers request failed", "peer", from, "err", err)
		return
	}
	candidates := s.candidates(answer)
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	for _, pi := range candidates[:min(len(candidates), need, maxDialsRound)] {
		ctx, cancel := context.WithTimeout(s.n.ctx, dialTimeout)
		err := s.n.host.Connect(ctx, pi)
		cancel()
		if err != nil {
			s.n.log.Debug("discovered peer unreachable", "peer", pi.ID, "err", err)
		}
	}
}

// candidates turns a peers answer into peers worth dialling: well-formed,
// not this node, not connected, not banned.
func (s *syncer) candidates(a protocol.PeersAnswer) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, pa := range a.Peers[:min(len(a.Peers), protocol.MaxPeersPerAnswer)] {
		id, err := peer.Decode(pa.ID)
		if err != nil || id == s.n.host.ID() || s.n.host.Network().Connectedness(id) == network.Connected || !s.trusted(id) {
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

// peersAnswer lists some of this node's connected peers for asker.
func (s *syncer) peersAnswer(asker peer.ID) protocol.PeersAnswer {
	ps := s.n.host.Peerstore()
	ids := s.n.host.Network().Peers()
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	answer := protocol.PeersAnswer{Peers: []protocol.PeerAddrs{}}
	for _, id := range ids {
		if id == asker || !s.member(id) || !s.trusted(id) {
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

// trusted reports whether this node has no reason to distrust p: its
// GossipSub score (if it has one yet) is not below zero, it is not banned
// from sync, and none of its gossip was rejected in the last distrustFor.
func (s *syncer) trusted(p peer.ID) bool {
	if score, ok := s.n.scores.get(p); ok && score < 0 {
		return false
	}
	now := time.Now()
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
	now := time.Now()
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

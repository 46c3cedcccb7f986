package node

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"gossipchain/node/chainsync"
)

// Redial backoff for configured peers.
const (
	redialMin   = 250 * time.Millisecond
	redialMax   = 15 * time.Second
	dialTimeout = 5 * time.Second
	checkEvery  = time.Second
	// keptRedial is how often (jittered by up to half) a node with its
	// target of connections (Config.TargetPeers, at least one) or more
	// re-dials a configured peer it lost: rarely enough that a thousand
	// nodes do not keep their seeds full (every 15-30 s did, in the
	// simulator), often enough that a healed partition finds its way back
	// within a couple of minutes.
	keptRedial = 2 * time.Minute
)

// keepConnected dials pi now and again whenever it is not connected,
// backing off exponentially (with jitter) while it stays unreachable. A
// node with its target of connections or more tries only every
// keptRedial: in a large network the configured peers are bootstrap nodes
// everyone lists, and were every node to redial them at once, they would
// stay full and newcomers could not get in (the simulator showed a third
// of 1,000 nodes locked out of four such seeds for minutes). It still
// tries, now and then: after a partition heals, a configured peer on the
// other side may be the only way back (the simulator's 40-node partition
// never healed without it; with it, in 2 s to 1 min; discovery's return to
// lost members, node/chainsync/discovery.go, now heals it in seconds). In
// a network smaller than the target every configured peer is
// kept as before.
func (n *Node) keepConnected(pi peer.AddrInfo) {
	n.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.PermanentAddrTTL)
	n.host.ConnManager().Protect(pi.ID, chainsync.ConfiguredTag)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		backoff, failures := redialMin, 0
		var keptDue time.Time // with enough peers, no try before this
		for {
			wait := checkEvery
			enough := len(n.host.Network().Peers()) >= max(1, n.cfg.TargetPeers)
			if !connectedTo(n.host.Network(), pi) && (!enough || !time.Now().Before(keptDue)) {
				// The jitter is drawn once per try, so the next one is
				// 1-2 min away, evenly (drawn at every check, it came
				// soon after the first minute).
				keptDue = time.Now().Add(keptRedial/2 + rand.N(keptRedial/2))
				ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
				n.dialing.Add(1)
				err := n.host.Connect(directDial(ctx, pi.Addrs), pi)
				n.dialing.Add(-1)
				cancel()
				switch {
				case n.ctx.Err() != nil:
					return
				case err != nil:
					failures++
					if failures == 1 {
						n.log.Warn("peer unreachable; retrying with backoff", "peer", pi.ID, "err", err)
					} else {
						n.log.Debug("peer still unreachable", "peer", pi.ID, "attempts", failures, "err", err)
					}
					wait = backoff/2 + rand.N(backoff/2+1)
					backoff = min(2*backoff, redialMax)
				default:
					if failures > 0 {
						n.log.Info("peer reachable again", "peer", pi.ID, "after_attempts", failures)
					} else {
						n.log.Info("connected to peer", "peer", pi.ID)
					}
					backoff, failures = redialMin, 0
				}
			}
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

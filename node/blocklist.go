package node

import (
	"errors"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxBlocked bounds the peers an operator can block.
const maxBlocked = 4096

// blocklist is the node's connection gater: it refuses every connection to
// and from the peers an operator blocked (POST /peers/blocked), until they
// are unblocked. It is kept in memory: a restart forgets it. A test's own
// gater, if any, is asked too.
type blocklist struct {
	next connmgr.ConnectionGater // nil, or a test's

	mu  sync.RWMutex // guards ids
	ids map[peer.ID]bool
}

func newBlocklist(next connmgr.ConnectionGater) *blocklist {
	return &blocklist{next: next, ids: map[peer.ID]bool{}}
}

func (b *blocklist) blocked(p peer.ID) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.ids[p]
}

func (b *blocklist) InterceptPeerDial(p peer.ID) bool {
	return !b.blocked(p) && (b.next == nil || b.next.InterceptPeerDial(p))
}

func (b *blocklist) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return !b.blocked(p) && (b.next == nil || b.next.InterceptAddrDial(p, a))
}

func (b *blocklist) InterceptAccept(c network.ConnMultiaddrs) bool {
	return b.next == nil || b.next.InterceptAccept(c)
}

func (b *blocklist) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return !b.blocked(p) && (b.next == nil || b.next.InterceptSecured(d, p, c))
}

func (b *blocklist) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if b.next == nil {
		return true, 0
	}
	return b.next.InterceptUpgraded(c)
}

// ErrBlockSelf and ErrTooManyBlocked are BlockPeer's refusals.
var (
	ErrBlockSelf      = errors.New("a node cannot block itself")
	ErrTooManyBlocked = errors.New("too many blocked peers")
)

// BlockPeer disconnects p and refuses every connection to and from it
// until UnblockPeer (an operator's tool, and how a chaos run cuts a
// network in two). A configured peer stays configured: dials to it fail
// while it is blocked.
func (n *Node) BlockPeer(p peer.ID) error {
	if p == n.ID() {
		return ErrBlockSelf
	}
	n.gate.mu.Lock()
	if !n.gate.ids[p] && len(n.gate.ids) >= maxBlocked {
		n.gate.mu.Unlock()
		return ErrTooManyBlocked
	}
	n.gate.ids[p] = true
	n.gate.mu.Unlock()
	n.log.Info("peer blocked", "peer", p)
	return n.host.Network().ClosePeer(p)
}

// UnblockPeer lets p connect again, reporting whether it was blocked.
func (n *Node) UnblockPeer(p peer.ID) bool {
	n.gate.mu.Lock()
	was := n.gate.ids[p]
	delete(n.gate.ids, p)
	n.gate.mu.Unlock()
	if was {
		n.log.Info("peer unblocked", "peer", p)
	}
	return was
}

// BlockedPeers lists the blocked peers.
func (n *Node) BlockedPeers() []string {
	n.gate.mu.RLock()
	defer n.gate.mu.RUnlock()
	out := make([]string, 0, len(n.gate.ids))
	for p := range n.gate.ids {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

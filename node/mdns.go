package node

import (
	"context"
	"net"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"

	"gossipchain/protocol"
)

// LAN discovery: a node listening on an address other than loopback
// announces itself by mDNS (protocol.MDNSService) and dials the nodes it
// hears of, so that nodes on one LAN find each other with no --peer. On a
// private network only key holders get past the handshake, as with any
// other dial.

// mdnsFound bounds the peers heard of and not dialled yet; more wait for
// the next announcement.
const mdnsFound = 64

// mdnsOn reports whether cfg's node runs mDNS: its own transports, on an
// address other than loopback, and not turned off.
func mdnsOn(cfg Config) bool {
	ip := net.ParseIP(cfg.ListenHost)
	return !cfg.DisableMDNS && cfg.Transports == nil && ip != nil && !ip.IsLoopback()
}

// startMDNS announces the node on the LAN and dials the nodes it hears
// of, until the node closes.
func (n *Node) startMDNS() error {
	found := make(chan peer.AddrInfo, mdnsFound)
	svc := mdns.NewMdnsService(n.host, protocol.MDNSService, mdnsNotifee(found))
	if err := svc.Start(); err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer svc.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case pi := <-found:
				n.dialFound(pi)
			}
		}
	}()
	return nil
}

// dialFound dials a node heard of on the LAN, unless it is this node,
// connected already, blocked or graylisted, or this node has peers enough.
func (n *Node) dialFound(pi peer.AddrInfo) {
	nw := n.host.Network()
	if pi.ID == n.ID() || nw.Connectedness(pi.ID) == network.Connected || !n.usable(pi.ID) || len(nw.Peers()) >= connLow {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	if err := n.host.Connect(directDial(ctx, pi.Addrs), pi); err != nil {
		n.log.Debug("node found on the LAN unreachable", "peer", pi.ID, "err", err)
		return
	}
	n.log.Info("connected to a node found on the LAN", "peer", pi.ID)
}

// mdnsNotifee hands what mDNS finds to startMDNS's goroutine, dropping
// what does not fit (the node announces itself again).
type mdnsNotifee chan<- peer.AddrInfo

func (f mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	select {
	case f <- pi:
	default:
	}
}

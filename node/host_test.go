package node

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// addrsOf splits n's addresses into TCP and QUIC ones.
func addrsOf(n *Node) (tcp, quic []ma.Multiaddr) {
	for _, a := range n.Addrs() {
		if isQUIC(a) {
			quic = append(quic, a)
		} else {
			tcp = append(tcp, a)
		}
	}
	return tcp, quic
}

// A node listens on TCP and QUIC, TCP first; a peer given only its QUIC
// address joins over QUIC, and blocks flow both ways.
func TestQUIC(t *testing.T) {
	a := startNode(t, "")
	tcp, quic := addrsOf(a)
	if len(tcp) == 0 || len(quic) == 0 {
		t.Fatalf("addrs %v, want TCP and QUIC", a.Addrs())
	}
	if isQUIC(a.Addr()) {
		t.Fatalf("first address %s is QUIC, want TCP", a.Addr())
	}
	pi, err := peer.AddrInfoFromP2pAddr(quic[0])
	if err != nil {
		t.Fatal(err)
	}
	b := startNodeWith(t, Config{Peers: []peer.AddrInfo{*pi}})
	waitMesh(t, a, b)
	for _, c := range b.host.Network().ConnsToPeer(a.ID()) {
		if !isQUIC(c.RemoteMultiaddr()) {
			t.Errorf("b's connection to a is over %s, want QUIC", c.RemoteMultiaddr())
		}
	}
	for _, n := range []*Node{a, b} {
		if _, err := n.Append(context.Background(), "over QUIC from "+n.ID().String()); err != nil {
			t.Fatal(err)
		}
	}
	waitSameHead(t, 10*time.Second, 2, a, b)
}

// QUIC can be turned off, and a private network has none (libp2p's
// private networks are TCP only).
func TestQUICOff(t *testing.T) {
	for name, cfg := range map[string]Config{"DisableQUIC": {DisableQUIC: true}, "PSK": {PSK: testPSK(t)}} {
		n := startNodeWith(t, cfg)
		if tcp, quic := addrsOf(n); len(quic) != 0 || len(tcp) == 0 {
			t.Errorf("%s: addrs %v, want TCP only", name, n.Addrs())
		}
	}
}

// QUICPort, if set, is QUIC's port; by default QUIC takes TCP's number.
func TestQUICPort(t *testing.T) {
	p := freePort(t)
	a := startNodeWith(t, Config{Port: p})
	tcp, quic := addrsOf(a)
	if port(tcp[0]) != p || port(quic[0]) != p {
		t.Errorf("TCP on %s, QUIC on %s: want both on %d", tcp[0], quic[0], p)
	}
	q := freePort(t)
	b := startNodeWith(t, Config{QUICPort: q})
	if _, quic := addrsOf(b); port(quic[0]) != q {
		t.Errorf("QUIC on %s, want port %d", quic[0], q)
	}
}

// freePort returns a port number free on loopback for TCP and UDP alike
// (free when it was tried).
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A blocked peer is cut off and cannot come back, even as a configured
// peer that keeps dialling; unblocked, it reconnects by itself.
func TestBlockPeer(t *testing.T) {
	a := startNode(t, "")
	b := startNode(t, "", a) // b keeps dialling a
	waitFor(t, 10*time.Second, "b connected to a", func() bool { return a.host.Network().Connectedness(b.ID()) == network.Connected })
	if err := a.BlockPeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	if a.host.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("b still connected after the block")
	}
	// b dials a: the handshake may finish on b's side before a's gater
	// refuses it, but a never keeps the connection.
	b.Connect(context.Background(), a.Addr())
	if a.host.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("a accepted a connection from a peer it blocked")
	}
	waitFor(t, 10*time.Second, "b's connection refused", func() bool { return b.host.Network().Connectedness(a.ID()) != network.Connected })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.host.Addrs()}); err == nil {
		t.Fatal("a dialled a peer it blocked")
	}
	if got := a.BlockedPeers(); !slices.Equal(got, []string{b.ID().String()}) {
		t.Fatalf("blocked: %v", got)
	}
	if a.BlockPeer(a.ID()) == nil {
		t.Fatal("a blocked itself")
	}
	if !a.UnblockPeer(b.ID()) || a.UnblockPeer(b.ID()) {
		t.Fatal("unblock should report the block once")
	}
	waitFor(t, 30*time.Second, "b back by its own redial", func() bool { return a.host.Network().Connectedness(b.ID()) == network.Connected })
}

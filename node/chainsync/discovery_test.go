package chainsync

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/protocol"
)

// The discovery component alone, on bare libp2p hosts: it names only the
// members it trusts, dials only trusted peers another names, and stops.
func TestDiscoveryComponent(t *testing.T) {
	newHost := func() host.Host { return bareHost(t) }
	self, good, stranger, bad := newHost(), newHost(), newHost(), newHost()
	for _, h := range []host.Host{good, stranger, bad} {
		if err := self.Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	// Another node names a fresh honest host and a distrusted one.
	fresh, distrusted := newHost(), newHost()
	named := protocol.PeersAnswer{}
	for _, h := range []host.Host{fresh, distrusted} {
		named.Peers = append(named.Peers, protocol.PeerAddrs{ID: h.ID().String(), Addrs: []string{h.Addrs()[0].String()}})
	}
	var asked sync.WaitGroup
	asked.Add(1)
	var once sync.Once
	d := newDiscovery(discoveryDeps{
		host: self, log: slog.New(slog.DiscardHandler),
		askPeers: func(context.Context, peer.ID) (protocol.PeersAnswer, error) {
			once.Do(asked.Done)
			return named, nil
		},
		member:  func(p peer.ID) bool { return p != stranger.ID() },
		trusted: func(p peer.ID) bool { return p != bad.ID() && p != distrusted.ID() },
		dialing: func() int { return 0 }, connLow: 64, dialTimeout: 5 * time.Second,
	})
	got := map[peer.ID]bool{}
	for _, pa := range d.answer(good.ID()).Peers {
		id, _ := peer.Decode(pa.ID)
		got[id] = true
	}
	if len(got) != 0 {
		t.Fatalf("answer to good named %v; want nothing (stranger is no member, bad is distrusted, good is the asker)", got)
	}
	if a := d.answer(stranger.ID()); len(a.Peers) != 1 || a.Peers[0].ID != good.ID().String() {
		t.Fatalf("answer to stranger: %+v; want good only", a.Peers)
	}
	d.start()
	d.poke()
	asked.Wait()
	waitFor(t, 10*time.Second, "the fresh peer dialled", func() bool {
		return self.Network().Connectedness(fresh.ID()) == network.Connected
	})
	d.stop()
	if self.Network().Connectedness(distrusted.ID()) == network.Connected {
		t.Fatal("discovery dialled a distrusted peer")
	}
	d.poke() // after stop: nothing runs, nothing blocks
}

// TestDiscoveryReturnsToLostPeers: a member lost while this node has few
// connections is dialled again; lost again after it came back, it is left
// alone; a configured peer is not discovery's to redial.
func TestDiscoveryReturnsToLostPeers(t *testing.T) {
	self, lost, configured := bareHost(t), bareHost(t), bareHost(t)
	for _, h := range []host.Host{lost, configured} {
		if err := self.Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	self.ConnManager().Protect(configured.ID(), ConfiguredTag)
	d := newDiscovery(discoveryDeps{
		host: self, log: slog.New(slog.DiscardHandler),
		askPeers: func(context.Context, peer.ID) (protocol.PeersAnswer, error) { return protocol.PeersAnswer{}, nil },
		member:   func(peer.ID) bool { return true },
		trusted:  func(peer.ID) bool { return true },
		dialing:  func() int { return 0 },
		connLow:  64, dialTimeout: 5 * time.Second,
	})
	d.start()
	defer d.stop()
	for _, h := range []host.Host{lost, configured} {
		h.Network().ClosePeer(self.ID()) // the far end drops the connection
		waitFor(t, 10*time.Second, "the connection gone", func() bool {
			return self.Network().Connectedness(h.ID()) != network.Connected
		})
		d.disconnected(h.ID(), true)
	}
	waitFor(t, 20*time.Second, "the lost peer dialled again", func() bool {
		return self.Network().Connectedness(lost.ID()) == network.Connected
	})
	d.mu.Lock()
	_, tracked := d.lost[configured.ID()]
	d.mu.Unlock()
	if tracked {
		t.Fatal("discovery took up a configured peer")
	}
	// Lost again after it came back: left alone for the rest of lostFor.
	waitFor(t, 10*time.Second, "the return noted", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.lost[lost.ID()].back
	})
	lost.Network().ClosePeer(self.ID())
	waitFor(t, 10*time.Second, "the connection gone again", func() bool {
		return self.Network().Connectedness(lost.ID()) != network.Connected
	})
	d.disconnected(lost.ID(), true)
	d.mu.Lock()
	until := time.Until(d.lost[lost.ID()].next)
	d.mu.Unlock()
	if until < lostFor-time.Minute {
		t.Fatalf("a peer lost twice is dialled again in %v; want it left alone for lostFor", until)
	}
}

// The syncer's discovery, over the protocol: a peer asking for peers is
// told the members this node trusts, never one with a negative score nor
// one whose gossip it rejected; and a peer whose gossip this node rejected
// is not dialled when another node names it.
func TestDiscoveryNamesTrustedMembers(t *testing.T) {
	honest, graylisted, asker := newSyncRig(t), newSyncRig(t), newSyncRig(t)
	a := newSyncRig(t, func(d *Deps) {
		d.Score = func(p peer.ID) (float64, bool) {
			if p == graylisted.host.ID() {
				return -1000, true
			}
			return 0, false
		}
	})
	for _, r := range []*syncRig{honest, graylisted, asker} {
		r.connect(t, a.host)
	}
	waitFor(t, 10*time.Second, "every peer a member at a", func() bool {
		return a.s.member(honest.host.ID()) && a.s.member(graylisted.host.ID()) && a.s.member(asker.host.ID())
	})
	named := func() map[peer.ID]bool {
		t.Helper()
		answer, err := asker.s.askPeers(context.Background(), a.host.ID())
		if err != nil {
			t.Fatalf("peers request: %v", err)
		}
		out := map[peer.ID]bool{}
		for _, pa := range answer.Peers {
			id, _ := peer.Decode(pa.ID)
			out[id] = true
		}
		return out
	}
	got := named()
	if !got[honest.host.ID()] || got[graylisted.host.ID()] || got[asker.host.ID()] {
		t.Fatalf("a named %v; want the honest peer, not the graylisted one nor the asker", got)
	}
	a.s.RejectedFrom(honest.host.ID())
	if named()[honest.host.ID()] {
		t.Error("a named a peer whose gossip it rejected")
	}

	// Told of two hosts it is not connected to, the asker would dial the
	// one whose gossip it never rejected, not the other.
	fresh, rejected := bareHost(t), bareHost(t)
	asker.s.RejectedFrom(rejected.ID())
	answer := protocol.PeersAnswer{}
	for _, h := range []host.Host{fresh, rejected} {
		answer.Peers = append(answer.Peers, protocol.PeerAddrs{ID: h.ID().String(), Addrs: []string{h.Addrs()[0].String()}})
	}
	if c := asker.s.discover.candidates(answer); len(c) != 1 || c[0].ID != fresh.ID() {
		t.Errorf("candidates %v; want the fresh host only", c)
	}
}

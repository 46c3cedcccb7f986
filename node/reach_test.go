package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A node that knows itself to be behind NAT reserves a slot on its
// configured peer's relay; another node dials it through the relay. That
// connection is listed as relayed, and carries neither gossip nor sync
// (docs/PROTOCOL.md, "Connections"); once the two connect directly, the
// block typed meanwhile arrives. (On loopback no hole punch can replace
// the relayed connection: hole punching needs public addresses, which the
// NAT lab has. The relay here is a bare relay, not a node, so that
// discovery does not connect the two directly first.)
func TestRelayedConnection(t *testing.T) {
	relay, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics(),
		libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	r := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()}
	a := startNodeWith(t, Config{Reachability: ReachabilityPrivate, Peers: []peer.AddrInfo{r}})
	b := startNode(t, "")

	circuit := ma.StringCast(fmt.Sprintf("%s/p2p/%s/p2p-circuit/p2p/%s", relay.Addrs()[0], relay.ID(), a.ID()))
	waitFor(t, 20*time.Second, "b connected to a through the relay", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := b.Connect(ctx, circuit) // fails until a has its reservation
		return err == nil
	})
	peerA := func() PeerInfo {
		for _, p := range b.Peers() {
			if p.ID == a.ID().String() {
				return p
			}
		}
		return PeerInfo{}
	}
	if p := peerA(); len(p.Conns) != 1 || p.Conns[0].Kind != ConnRelayed || p.Conns[0].Transport != "tcp" {
		t.Fatalf("b's peer a: %+v, want one relayed connection over TCP", p)
	}
	if _, err := a.Append(context.Background(), "from behind NAT"); err != nil {
		t.Fatal(err)
	}
	// Identify runs over the relayed connection; a head exchange or a
	// GossipSub stream would follow at once if it were allowed there.
	waitFor(t, 10*time.Second, "identify over the relayed connection", func() bool {
		ps, _ := b.host.Peerstore().SupportsProtocols(a.ID(), pubsub.GossipSubID_v11)
		return len(ps) > 0
	})
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if p := peerA(); p.Head != nil || p.Mesh || b.Chain().Height() != 0 {
			t.Fatalf("over the relayed connection: head %+v, mesh %v, b's height %d: want no sync, no gossip", p.Head, p.Mesh, b.Chain().Height())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := b.Connect(context.Background(), a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitSameHead(t, 10*time.Second, 1, a, b)
	p := peerA()
	if p.Head == nil || !slices.ContainsFunc(p.Conns, func(c ConnInfo) bool { return c.Kind == ConnDirect }) {
		t.Errorf("b's peer a after the direct connection: %+v, want a head and a direct connection", p)
	}
}

// The relay serves no blocked or graylisted peer, and auto-relay never
// asks one for a slot.
func TestRelayRefusesBadPeers(t *testing.T) {
	n := startNode(t, "")
	good, blocked, gray, low := peer.ID("good"), peer.ID("blocked"), peer.ID("gray"), peer.ID("low")
	n.gate.ids[blocked] = true
	n.scores.set(map[peer.ID]float64{gray: GraylistThreshold - 1, low: GraylistThreshold})
	acl := relayACL{n.usable}
	for _, tc := range []struct {
		p    peer.ID
		want bool
	}{{good, true}, {blocked, false}, {gray, false}, {low, true}} {
		if got := acl.AllowReserve(tc.p, nil); got != tc.want {
			t.Errorf("reservation by %s: %v, want %v", tc.p, got, tc.want)
		}
		if got := acl.AllowConnect(good, nil, tc.p); got != tc.want {
			t.Errorf("circuit to %s: %v, want %v", tc.p, got, tc.want)
		}
		if got := acl.AllowConnect(tc.p, nil, good); got != tc.want {
			t.Errorf("circuit from %s: %v, want %v", tc.p, got, tc.want)
		}
	}
	n.reach.static = []peer.AddrInfo{{ID: blocked}, {ID: good}, {ID: gray}}
	var got []peer.ID
	for pi := range n.reach.relayCandidates(context.Background(), 10) {
		got = append(got, pi.ID)
	}
	if len(got) != 1 || got[0] != good {
		t.Errorf("relay candidates %v, want only %s", got, good)
	}
}

// Reachability is in /status and in the metrics.
func TestReachabilityReported(t *testing.T) {
	for _, want := range []string{ReachabilityPublic, ReachabilityPrivate} {
		n := startNodeWith(t, Config{Reachability: want})
		waitFor(t, 10*time.Second, "reachability "+want, func() bool { return n.Status().Reachability == want })
		for _, state := range []string{ReachabilityPublic, ReachabilityPrivate, ReachabilityUnknown} {
			got, ok := value(scrape(t, n), "gossipchain_reachability", map[string]string{"state": state})
			if wantV := map[bool]float64{true: 1}[state == want]; !ok || got != wantV {
				t.Errorf("%s node: gossipchain_reachability{state=%q} = %v (%v), want %v", want, state, got, ok, wantV)
			}
		}
	}
	if got := startNode(t, "").Status().Reachability; got != ReachabilityUnknown {
		t.Errorf("a loopback node's reachability is %q, want unknown", got)
	}
}

package node

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/protocol"
)

func TestDiscoveryFromOneBootstrap(t *testing.T) {
	const count = 30
	boot := startNode(t, "")
	nodes := []*Node{boot}
	start := time.Now()
	for i := 1; i < count; i++ {
		nodes = append(nodes, startNode(t, "", boot))
	}
	waitMesh(t, nodes...)
	waitFor(t, 60*time.Second, "every node connected to more than the bootstrap", func() bool {
		for _, n := range nodes[1:] {
			if len(n.host.Network().Peers()) < 3 {
				return false
			}
		}
		return true
	})
	t.Logf("all %d nodes have >= 3 peers after %v", count, time.Since(start))
	lo, hi := count, 0
	for _, n := range nodes[1:] {
		c := len(n.host.Network().Peers())
		lo, hi = min(lo, c), max(hi, c)
	}
	t.Logf("peers per node: %d..%d", lo, hi)
	var lines []string
	for i := 0; i < 5; i++ {
		line := fmt.Sprintf("with bootstrap %d", i)
		if _, err := nodes[1+i*5].Append(context.Background(), line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	waitConverged(t, 30*time.Second, lines, nodes...)

	// A newcomer given only the bootstrap address: how long until it is in
	// the mesh with peers of its own and has the chain.
	joined := time.Now()
	late := startNode(t, "", boot)
	waitFor(t, 30*time.Second, "the newcomer in the mesh with peers beyond the bootstrap", func() bool {
		return late.MeshPeers() > 0 && len(late.host.Network().Peers()) >= 3 && late.Chain().Height() == uint64(len(lines))
	})
	t.Logf("newcomer with one bootstrap address: %d peers, in the mesh and synced after %v", len(late.host.Network().Peers()), time.Since(joined))
	nodes = append(nodes, late)
	boot.Close()
	rest := nodes[1:]
	for i := 0; i < 5; i++ {
		line := fmt.Sprintf("without bootstrap %d", i)
		if _, err := rest[2+i*5].Append(context.Background(), line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	waitConverged(t, 30*time.Second, lines, rest...)
}

func TestChurn(t *testing.T) {
	// Eight nodes, one bootstrap; nodes are stopped and started again at
	// random (a bounded loop) while lines are typed on running ones. At the
	// end, with every node running again, all hold one chain with every
	// line exactly once.
	const count, rounds = 8, 24
	rng := rand.New(rand.NewPCG(7, 7))
	dirs := make([]string, count)
	nodes := make([]*Node, count)
	for i := range nodes {
		dirs[i] = t.TempDir()
		var peers []*Node
		if i > 0 {
			peers = nodes[:1]
		}
		nodes[i] = startNode(t, dirs[i], peers...)
	}
	waitMesh(t, nodes...)
	running := func() []int {
		var out []int
		for i, n := range nodes {
			if n != nil {
				out = append(out, i)
			}
		}
		return out
	}
	var lines []string
	for r := 0; r < rounds; r++ {
		up := running()
		i := rng.IntN(count)
		switch {
		case nodes[i] != nil && len(up) > 3:
			nodes[i].Close()
			nodes[i] = nil
		case nodes[i] == nil:
			via := nodes[up[rng.IntN(len(up))]]
			nodes[i] = startNode(t, dirs[i], via)
		}
		// A line on a running node that has a peer, out before the next
		// change.
		up = running()
		var n *Node
		waitFor(t, 20*time.Second, "a running node with a peer", func() bool {
			for _, j := range up {
				if nodes[j].MeshPeers() > 0 {
					n = nodes[j]
					return true
				}
			}
			return false
		})
		line := fmt.Sprintf("churn %d", r)
		p, err := n.Append(context.Background(), line)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		waitFor(t, 20*time.Second, "the line on another running node", func() bool {
			for _, j := range up {
				if nodes[j] != n && nodes[j].Chain().Has(p.Block.Hash) {
					return true
				}
			}
			return false
		})
	}
	for i := range nodes {
		if nodes[i] == nil {
			nodes[i] = startNode(t, dirs[i], nodes[running()[0]])
		}
	}
	waitConverged(t, 60*time.Second, lines, nodes...)
}

// Discovery names only members it has no reason to distrust: an attacker
// connected to a and graylisted there is never handed to b or c, nor
// dialled by them, while an honest peer is found through a; a member whose
// gossip a rejected is withheld as well.
func TestDiscoveryWithholdsBadPeers(t *testing.T) {
	a := startNode(t, "")
	honest := startNode(t, "", a)
	attacker := newRawPublisher(t, a)
	for i := range 3 {
		attacker.publish(t, []byte(fmt.Sprintf("garbage %d", i)))
	}
	waitFor(t, 10*time.Second, "the attacker graylisted at a", func() bool {
		s, ok := a.PeerScore(attacker.host.ID())
		return ok && s < GraylistThreshold
	})

	b := startNode(t, "", a)
	c := startNode(t, "", a)
	waitFor(t, 20*time.Second, "a names the honest peer to b", func() bool { return peersNamed(t, b.host, a.ID())[honest.ID()] })
	for range 5 {
		got := peersNamed(t, b.host, a.ID())
		if got[attacker.host.ID()] {
			t.Fatal("a named the graylisted attacker to b")
		}
		if !got[honest.ID()] {
			t.Fatalf("a did not name the honest peer: %v", got)
		}
	}
	waitFor(t, 20*time.Second, "b and c find the honest peer through a", func() bool {
		nw := honest.host.Network()
		return nw.Connectedness(b.ID()) == network.Connected && nw.Connectedness(c.ID()) == network.Connected
	})
	for _, n := range []*Node{b, c} {
		if n.host.Network().Connectedness(attacker.host.ID()) == network.Connected {
			t.Errorf("node %s dialled the attacker", n.ID())
		}
	}

	a.sync.RejectedFrom(honest.ID())
	if peersNamed(t, b.host, a.ID())[honest.ID()] {
		t.Error("a named a peer whose gossip it rejected")
	}
}

// peersNamed asks p, from h, for the peers it is connected to, as
// discovery does (a peers request on the sync protocol), and returns whom
// p named.
func peersNamed(t *testing.T, h host.Host, p peer.ID) map[peer.ID]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, p, protocol.SyncID)
	if err != nil {
		t.Fatalf("peers request: %v", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	var answer protocol.PeersAnswer
	err = protocol.WriteJSON(st, &protocol.Request{Type: protocol.RequestPeers})
	if err == nil {
		// As the syncer's client (chainsync/client.go): over QUIC a
		// server that answered and closed first fails this side's
		// CloseWrite, and the answer is there to read.
		_ = st.CloseWrite()
		err = protocol.ReadJSON(bufio.NewReader(st), protocol.MaxPeersAnswerBytes, &answer)
	}
	if err != nil {
		st.Reset()
		t.Fatalf("peers request: %v", err)
	}
	out := map[peer.ID]bool{}
	for _, pa := range answer.Peers {
		id, _ := peer.Decode(pa.ID)
		out[id] = true
	}
	return out
}

// A node told to look for no peers (Config.TargetPeers negative, the
// command's --target-peers 0) dials only the peer it was given, while
// its neighbours, looking for 8, dial it and each other.
func TestTargetPeersNone(t *testing.T) {
	boot := startNode(t, "")
	x := startNode(t, "", boot)
	y := startNode(t, "", boot)
	alone := startNodeWith(t, Config{TargetPeers: -1}, boot)
	w := startNode(t, "", boot)
	outbound := func(n *Node) int {
		c := 0
		for _, conn := range n.host.Network().Conns() {
			if conn.Stat().Direction == network.DirOutbound {
				c++
			}
		}
		return c
	}
	waitFor(t, 30*time.Second, "the others dial past the bootstrap, and dial the node that does not", func() bool {
		return outbound(w) >= 2 && len(alone.host.Network().Peers()) >= 3 && len(x.host.Network().Peers()) >= 3 && len(y.host.Network().Peers()) >= 3
	})
	if got := outbound(alone); got != 1 {
		t.Fatalf("the node looking for no peers dialled %d, want 1 (the bootstrap)", got)
	}
}

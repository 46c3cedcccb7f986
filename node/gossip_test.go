package node

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// TestMeshParams: the library's own D gives its defaults, and every mesh
// degree the simulator compares is one GossipSub accepts.
func TestMeshParams(t *testing.T) {
	def, six := pubsub.DefaultGossipSubParams(), meshParams(6)
	if six.D != def.D || six.Dlo != def.Dlo || six.Dhi != def.Dhi || six.Dscore != def.Dscore || six.Dout != def.Dout {
		t.Fatalf("meshParams(6) = D %d, %d..%d, Dscore %d, Dout %d; want the library's %d, %d..%d, %d, %d",
			six.D, six.Dlo, six.Dhi, six.Dscore, six.Dout, def.D, def.Dlo, def.Dhi, def.Dscore, def.Dout)
	}
	h := bareHost(t)
	for d := 2; d <= 12; d++ {
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := pubsub.NewGossipSub(ctx, h, pubsub.WithGossipSubParams(meshParams(d))); err != nil {
			t.Errorf("D=%d: %v", d, err)
		}
		cancel()
	}
}

// TestGossipParams: GossipSub accepts the node's own parameters, and
// IDONTWANT stays off for a block of a typical line (node/gossip.go
// gossipParams: it cost more than the copies it spared).
func TestGossipParams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := pubsub.NewGossipSub(ctx, bareHost(t), pubsub.WithGossipSubParams(gossipParams())); err != nil {
		t.Fatal(err)
	}
	b, err := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))).Sign(ledger.Genesis(), strings.Repeat("x", 200), time.UnixMilli(1))
	if err != nil {
		t.Fatal(err)
	}
	data, err := protocol.EncodeBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	if p := gossipParams(); len(data) >= p.IDontWantMessageThreshold {
		t.Errorf("a block of a 200-byte line is %d bytes, at or above the IDONTWANT threshold %d", len(data), p.IDontWantMessageThreshold)
	}
}

package node

import (
	"context"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
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

package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// meshTracer follows GossipSub's grafts and prunes for one topic, since the
// library exposes the mesh only through its tracer.
type meshTracer struct {
	noTrace
	topic string
	mu    sync.Mutex // guards mesh
	mesh  map[peer.ID]bool
}

func newMeshTracer(topic string) *meshTracer {
	return &meshTracer{topic: topic, mesh: map[peer.ID]bool{}}
}

func (t *meshTracer) peers() map[peer.ID]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[peer.ID]bool, len(t.mesh))
	for p := range t.mesh {
		out[p] = true
	}
	return out
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	if topic == t.topic {
		t.mu.Lock()
		t.mesh[p] = true
		t.mu.Unlock()
	}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	if topic == t.topic {
		t.mu.Lock()
		delete(t.mesh, p)
		t.mu.Unlock()
	}
}

func (t *meshTracer) RemovePeer(p peer.ID) { t.Prune(p, t.topic) }

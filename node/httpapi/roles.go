package httpapi

import (
	"context"
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/protocol"
)

// The roles a node plays for the API, one per kind of endpoint: a handler
// is given only the roles it uses, so a test fakes just those.

// ChainReader reads the main chain (GET /blocks, /blocks/{index}, the head
// an event stream starts with).
type ChainReader interface {
	Head() *ledger.Block
	Height() uint64
	// Range returns up to limit main-chain blocks from index from, in
	// order: none past the head.
	Range(from uint64, limit int) ([]*ledger.Block, error)
	// BlockAt returns the main-chain block at index i, nil if none.
	BlockAt(i uint64) (*ledger.Block, error)
}

// StatusReporter answers GET /status.
type StatusReporter interface {
	Status() node.Status
}

// Appender makes data a block on the head and returns once it is stored
// (POST /blocks).
type Appender interface {
	Append(ctx context.Context, data string) (node.Published, error)
}

// PeerLister lists the connected peers (GET /peers).
type PeerLister interface {
	Peers() []node.PeerInfo
}

// Connector dials a peer (POST /peers).
type Connector interface {
	Connect(ctx context.Context, addr ma.Multiaddr) (peer.ID, error)
}

// Blocklist keeps peers out (/peers/blocked): BlockPeer disconnects a
// peer and refuses it until UnblockPeer.
type Blocklist interface {
	BlockPeer(p peer.ID) error
	UnblockPeer(p peer.ID) bool
	BlockedPeers() []string
}

// Tracer tells how a block reached the node (GET /blocks/{id}/trace);
// PeerTraces asks every connected peer for its own record.
type Tracer interface {
	Trace(hash string) (*protocol.Trace, bool)
	PeerTraces(ctx context.Context, hash string) []node.PeerTrace
}

// EventSource follows the node's events (GET /events) until cancel is
// called or the node closes (the channel is closed then).
type EventSource interface {
	Subscribe() (events <-chan node.Event, cancel func())
}

// DropCounter counts a request the API refused under reason (shown in
// /status).
type DropCounter interface {
	CountDrop(reason string)
}

// MetricsSource serves the node's Prometheus registry (GET /metrics).
type MetricsSource interface {
	MetricsHandler() http.Handler
}

// Node is every role the API needs but reading the chain, which a
// ChainReader does (*node.Node's Chain()): *node.Node is a Node.
type Node interface {
	StatusReporter
	Appender
	PeerLister
	Connector
	Blocklist
	Tracer
	EventSource
	DropCounter
	MetricsSource
}

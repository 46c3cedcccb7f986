// Package node runs a gossipchain node: a libp2p host with a persistent
// identity, the GossipSub topic that carries blocks and its validator, sync,
// discovery, peer scoring, the author budget, metrics and the node's event
// feed. It wires the network to the ledger. It imports ledger, protocol,
// node/internal/..., go-libp2p, go-libp2p-pubsub and client_golang; the
// HTTP API (node/httpapi) is built on it, never the other way.
package node

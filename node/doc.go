// Package node runs a gossipchain node: a libp2p host with a persistent
// identity, the GossipSub topic that carries blocks and its validator, peer
// scoring, the author budget, metrics and the node's event feed, and the
// syncer (node/chainsync: sync, discovery and trace requests), which it
// builds from its parts. It wires the network to the ledger. It imports
// ledger, protocol, node/chainsync, node/internal/..., go-libp2p,
// go-libp2p-pubsub and client_golang; the HTTP API (node/httpapi) is built
// on it, never the other way.
package node

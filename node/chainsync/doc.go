// Package chainsync is the request/response side of a gossipchain node: the
// sync protocol (a status exchange, blocks fetched by locator, and serving
// both to peers), discovery (peer lists over the same protocol) and trace
// requests.
//
// A Syncer keeps a node's chain level with its peers'. It is built from
// narrow dependencies (Deps: a libp2p host, the chain, a logger, the author
// budget, counters, and what to do with what a sync brings), owns its
// goroutines, and refuses work after Close, so it runs on a bare libp2p
// host without the rest of a node.
//
// The files are named by role: syncer.go (the component and its loop),
// catchup.go (fetching what this node lacks from one peer), peers.go (what
// it knows of each peer: heads, bans, members, distrust), client.go and
// server.go (the two ends of the protocol), wire.go (framing shared by
// both), discovery.go, progress.go and timers.go.
//
// It imports ledger, protocol, node/internal/ratelimit and go-libp2p; never
// package node, which builds it and gives it what it needs.
package chainsync

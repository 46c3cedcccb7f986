// Package ledger holds gossipchain's blocks: their encoding, hashing and
// signature rule, validation, fork choice, finality, the lines typed on this
// node, and the bbolt store with its offline check. It is pure: it imports
// the standard library, bbolt and curve25519-voi, nothing of libp2p and
// nothing else of gossipchain, so it can be tested fast, without a network.
package ledger

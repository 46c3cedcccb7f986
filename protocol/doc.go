// Package protocol is what two gossipchain nodes must agree on: the gossip
// topic, the message encoding and ID, the sync protocol's frames, and the
// limits peers enforce on each other. Together with docs/PROTOCOL.md it is
// enough to write another implementation. It imports ledger (the block and
// its rules) and the standard library.
package protocol

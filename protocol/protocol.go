package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"gossipchain/ledger"
)

// TopicBlocks is the GossipSub topic that carries blocks.
const TopicBlocks = "blocks"

// MDNSService is the DNS-SD service name under which nodes announce
// themselves on a LAN (libp2p's mDNS discovery: TXT records of
// "dnsaddr=<multiaddr>/p2p/<id>"). Not libp2p's default "_p2p._udp": a
// node finds other gossipchain nodes, not every libp2p program nearby.
const MDNSService = "_gossipchain._udp"

// EncodeBlock returns the gossip message for b: its JSON object.
func EncodeBlock(b *ledger.Block) ([]byte, error) {
	return json.Marshal(b)
}

// DecodeBlock parses one gossip message. It rejects oversized messages,
// anything but a single JSON object with the block fields, and unknown
// fields; it does not check the block's rules (see ledger).
func DecodeBlock(data []byte) (*ledger.Block, error) {
	if len(data) > MaxBlockMessageBytes {
		return nil, fmt.Errorf("message is %d bytes, limit %d", len(data), MaxBlockMessageBytes)
	}
	if b, ok := decodeCanonical(data); ok {
		return b, nil
	}
	var b ledger.Block
	if err := UnmarshalStrict(data, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// MessageID names a gossip message by its block: the SHA-256 of the
// block's 32-byte hash, computed from its contents (not the hash field, which
// a tampered copy would keep), followed by its 64-byte signature. A block is then one
// message however many nodes publish it and however its JSON is spaced.
// The ID is the digest's 32 bytes, not their hex text: IHAVE, IWANT and
// IDONTWANT carry IDs, half as many bytes each.
//
// The signature is part of the ID because it is not covered by the hash: were
// the ID the block hash alone, a peer could send a copy of a fresh block with
// a broken signature, have it rejected, and so mark the real block as already
// seen on the nodes it reached first. Ed25519 signatures in Go are canonical,
// so a valid block has exactly one ID.
//
// The hash field itself is outside the hash, so it must match the computed
// hash for the message to have its block's ID: otherwise a copy with a
// wrong hash field (and the block's contents and signature) would have the
// real block's ID, be rejected first, and make its neighbours drop the real
// one as seen. One ID is then one block, field for field.
//
// A message that is not a well-formed block, or whose hash field is not
// its contents' hash, is named "raw:" plus the 32-byte SHA-256 of its
// bytes (36 bytes: never a block's ID); it is rejected by validation
// anyway.
func MessageID(data []byte) string {
	id, _ := DecodeMessage(data)
	return id
}

// DecodeMessage is MessageID that also returns the block the message
// decodes to (nil for a raw ID), so a caller decodes it once.
func DecodeMessage(data []byte) (string, *ledger.Block) {
	if b, err := DecodeBlock(data); err == nil {
		if id, ok := BlockID(b); ok {
			return id, b
		}
	}
	sum := sha256.Sum256(data)
	return "raw:" + string(sum[:]), nil
}

// BlockID returns the message ID of b (see MessageID); ok is false when
// prevHash or the signature is not hex of the right length, or the hash
// field is not b's hash.
func BlockID(b *ledger.Block) (id string, ok bool) {
	computed, err := b.ComputeHash()
	if err != nil || computed != b.Hash {
		return "", false
	}
	h, _ := hex.DecodeString(computed)
	sig, err := hex.DecodeString(b.Signature)
	if err != nil || len(sig) != 64 {
		return "", false
	}
	sum := sha256.Sum256(append(h, sig...))
	return string(sum[:]), true
}

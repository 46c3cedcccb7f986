package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
	"unicode/utf8"
)

// MaxDataBytes bounds the data a block carries, in bytes of UTF-8.
const MaxDataBytes = 8 << 10

// hashDomain starts every encoded block, so a block hash can never be
// confused with a hash of anything else an author's key signs.
const hashDomain = "gossipchain/block/v1"

// Block is one entry of the chain, exactly as it travels and is stored.
// Hash and Signature are lowercase hex; Timestamp is Unix milliseconds.
type Block struct {
	Index     uint64 `json:"index"`
	Timestamp int64  `json:"timestamp"`
	Data      string `json:"data"`
	PrevHash  string `json:"prevHash"`
	Author    string `json:"author"`
	Hash      string `json:"hash"`
	Signature string `json:"signature"`
}

// Encode returns the canonical encoding of the fields covered by the hash:
//
//	"gossipchain/block/v1"         20 ASCII bytes
//	index                          uint64, big-endian
//	timestamp                      int64, big-endian two's complement
//	len(data), data                uint32 big-endian, then the UTF-8 bytes
//	prevHash                       32 bytes (the hex decoded)
//	len(author), author            uint32 big-endian, then the ASCII bytes
//
// It fails only when prevHash is not 64 hex characters.
func (b *Block) Encode() ([]byte, error) {
	prev, err := decodeHex(b.PrevHash, sha256.Size)
	if err != nil {
		return nil, ruleError(ErrMalformed, "prevHash: %v", err)
	}
	buf := make([]byte, 0, len(hashDomain)+8+8+4+len(b.Data)+32+4+len(b.Author))
	buf = append(buf, hashDomain...)
	buf = binary.BigEndian.AppendUint64(buf, b.Index)
	buf = binary.BigEndian.AppendUint64(buf, uint64(b.Timestamp))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.Data)))
	buf = append(buf, b.Data...)
	buf = append(buf, prev...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.Author)))
	buf = append(buf, b.Author...)
	return buf, nil
}

// ComputeHash returns the hex SHA-256 of the block's canonical encoding.
func (b *Block) ComputeHash() (string, error) {
	enc, err := b.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(enc)
	return hex.EncodeToString(sum[:]), nil
}

// Time returns the block's timestamp as a time.Time.
func (b *Block) Time() time.Time { return time.UnixMilli(b.Timestamp) }

// CheckSanity applies every rule that needs no other block: shape, size,
// hash and author signature (the rule in sig.go). It is safe to call
// concurrently and is what makes a block impossible to forge or alter in
// flight.
func (b *Block) CheckSanity() error { return b.checkSanity(nil) }

// checkSanity is CheckSanity with authors' keys taken from keys.
func (b *Block) checkSanity(keys *keyCache) error {
	sc, err := b.checkShape(keys)
	if err != nil {
		return err
	}
	if !sc.key.verify(sc.hash, sc.sig) {
		return ruleError(ErrBadSignature, "signature does not verify for author %s", b.Author)
	}
	return nil
}

// checkShape is CheckSanity but for the signature check, which it returns
// ready to run alone or in a batch.
func (b *Block) checkShape(keys *keyCache) (*sigCheck, error) {
	if b.Index == 0 {
		return nil, ruleError(ErrGenesis, "block claims index 0 (genesis)")
	}
	if b.Data == "" {
		return nil, ruleError(ErrMalformed, "empty data")
	}
	if len(b.Data) > MaxDataBytes {
		return nil, ruleError(ErrOversize, "data is %d bytes, limit %d", len(b.Data), MaxDataBytes)
	}
	if !utf8.ValidString(b.Data) {
		return nil, ruleError(ErrMalformed, "data is not valid UTF-8")
	}
	sum, err := decodeHex(b.Hash, hashBytes)
	if err != nil {
		return nil, ruleError(ErrMalformed, "hash: %v", err)
	}
	sig, err := decodeHex(b.Signature, ed25519.SignatureSize)
	if err != nil {
		return nil, ruleError(ErrMalformed, "signature: %v", err)
	}
	key, err := keys.key(b.Author)
	if err != nil {
		return nil, ruleError(ErrBadAuthor, "author %.60q: %v", b.Author, err)
	}
	want, err := b.ComputeHash()
	if err != nil {
		return nil, err
	}
	if want != b.Hash {
		return nil, ruleError(ErrBadHash, "hash %s does not match contents (%s)", short(b.Hash), short(want))
	}
	return &sigCheck{key: key, hash: sum, sig: sig}, nil
}

// decodeHex decodes lowercase hex of exactly n bytes.
func decodeHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, errorf("want %d hex characters, got %d", 2*n, len(s))
	}
	if !isLowerHex(s) {
		return nil, errorf("not lowercase hex")
	}
	return hex.DecodeString(s)
}

// isLowerHex reports whether s is lowercase hex digits only: the one form
// of every hash and signature.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// IsHash reports whether s has the form of a block hash: 64 lowercase hex
// characters.
func IsHash(s string) bool { return len(s) == 2*hashBytes && isLowerHex(s) }

// short returns the first 8 characters of a hash, for messages.
func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// Short returns the first 8 characters of the block's hash, for display.
func (b *Block) Short() string { return short(b.Hash) }

// Signer authors blocks with one Ed25519 identity.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key; its author ID is key's peer ID.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: AuthorID(key.Public().(ed25519.PublicKey))}
}

// ID returns the signer's peer ID, the Author of the blocks it signs.
func (s *Signer) ID() string { return s.id }

// Sign builds the block that appends data to parent at time t.
func (s *Signer) Sign(parent *Block, data string, t time.Time) (*Block, error) {
	b := &Block{
		Index:     parent.Index + 1,
		Timestamp: t.UnixMilli(),
		Data:      data,
		PrevHash:  parent.Hash,
		Author:    s.id,
	}
	if err := s.Seal(b); err != nil {
		return nil, err
	}
	// Every rule but the signature's, which Seal just made: a signature
	// from Go's Ed25519 verifies by construction.
	_, err := b.checkShape(nil)
	return b, err
}

// Seal sets b's Author, Hash and Signature from its other fields, without
// checking them: tools that build many blocks seal them in parallel once
// each block's parent hash is known.
func (s *Signer) Seal(b *Block) error {
	b.Author = s.id
	h, err := b.ComputeHash()
	if err != nil {
		return err
	}
	b.Hash = h
	sum, _ := hex.DecodeString(h)
	b.Signature = hex.EncodeToString(ed25519.Sign(s.key, sum))
	return nil
}

// Genesis returns the fixed first block, identical on every node. It has no
// author and no signature and is never sent over the network.
func Genesis() *Block {
	b := &Block{
		Index:     0,
		Timestamp: 1735689600000, // 2025-01-01T00:00:00Z
		Data:      "gossipchain genesis",
		PrevHash:  zeroHash,
	}
	b.Hash, _ = b.ComputeHash()
	return b
}

const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

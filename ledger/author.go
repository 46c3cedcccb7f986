package ledger

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/big"
	"sync"
)

// An author is named by its libp2p peer ID. For an Ed25519 key the peer ID
// embeds the key itself: it is the base58btc text of an identity multihash
// (0x00, length 36) over the protobuf PublicKey{Type: Ed25519, Data: key},
// that is the 6 bytes below followed by the 32-byte key. Decoding it needs
// nothing from libp2p, which keeps this package free of networking.
var authorPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// AuthorID returns the peer ID text of an Ed25519 public key.
func AuthorID(pub ed25519.PublicKey) string {
	return base58Encode(append(append([]byte{}, authorPrefix...), pub...))
}

// authorKeys remembers the keys of recent authors: a chain has few, and
// decoding a peer ID (base58, big-number arithmetic) costs about a tenth of
// a signature check. Bounded: it starts over when full.
var authorKeys = struct {
	sync.Mutex
	m map[string]ed25519.PublicKey
}{m: map[string]ed25519.PublicKey{}}

// AuthorKey returns the Ed25519 public key embedded in a peer ID. The key
// returned may be shared: callers must not modify it.
func AuthorKey(id string) (ed25519.PublicKey, error) {
	authorKeys.Lock()
	key, ok := authorKeys.m[id]
	authorKeys.Unlock()
	if ok {
		return key, nil
	}
	key, err := decodeAuthor(id)
	if err != nil {
		return nil, err
	}
	authorKeys.Lock()
	if len(authorKeys.m) >= authorKeysKeep {
		authorKeys.m = map[string]ed25519.PublicKey{}
	}
	authorKeys.m[id] = key
	authorKeys.Unlock()
	return key, nil
}

func decodeAuthor(id string) (ed25519.PublicKey, error) {
	// An Ed25519 peer ID is always 52 characters; checking first also bounds
	// the work base58 decoding does on hostile input.
	if len(id) != 52 {
		return nil, errors.New("not an Ed25519 peer ID")
	}
	raw, err := base58Decode(id)
	if err != nil {
		return nil, err
	}
	if len(raw) != len(authorPrefix)+ed25519.PublicKeySize || !bytes.HasPrefix(raw, authorPrefix) {
		return nil, errors.New("not an Ed25519 peer ID")
	}
	return ed25519.PublicKey(raw[len(authorPrefix):]), nil
}

func base58Encode(b []byte) string {
	n := new(big.Int).SetBytes(b)
	radix, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, base58Alphabet[0])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

func base58Decode(s string) ([]byte, error) {
	n, radix := new(big.Int), big.NewInt(58)
	zeros := 0
	for zeros < len(s) && s[zeros] == base58Alphabet[0] {
		zeros++
	}
	for i := 0; i < len(s); i++ {
		d := bytes.IndexByte([]byte(base58Alphabet), s[i])
		if d < 0 {
			return nil, errors.New("invalid base58 character")
		}
		n.Mul(n, radix)
		n.Add(n, big.NewInt(int64(d)))
	}
	return append(make([]byte, zeros), n.Bytes()...), nil
}

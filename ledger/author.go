package ledger

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/big"
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
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

// AuthorKey returns the Ed25519 public key embedded in a peer ID.
func AuthorKey(id string) (ed25519.PublicKey, error) { return decodeAuthor(id) }

// keyCache remembers recent authors' keys, decoded from their peer IDs and
// expanded for signature checks: a chain has few authors, decoding a peer
// ID (base58, big-number arithmetic) costs about a tenth of a signature
// check, and an expanded key makes each check about a third cheaper. A
// Chain owns one (as it owns its verified set) and passes it to the checks
// it runs; it keeps two generations of at most authorKeysKeep keys, so it
// is bounded whatever arrives, and a flood of new authors pushes out the
// old ones a generation at a time, not all at once.
type keyCache struct {
	mu        sync.Mutex
	cur, prev map[string]*authorKey
}

// authorKey is one author's key, decoded and (if it is a point) expanded.
type authorKey struct {
	pub      ed25519.PublicKey
	expanded *voi.ExpandedPublicKey // nil: not a point; every check fails
}

func newKeyCache() *keyCache {
	return &keyCache{cur: map[string]*authorKey{}, prev: map[string]*authorKey{}}
}

// key returns the key of author id, decoding it if it is not remembered.
// A nil cache decodes every time.
func (kc *keyCache) key(id string) (*authorKey, error) {
	if kc != nil {
		kc.mu.Lock()
		k, ok := kc.cur[id]
		if !ok {
			if k, ok = kc.prev[id]; ok {
				kc.put(id, k)
			}
		}
		kc.mu.Unlock()
		if ok {
			return k, nil
		}
	}
	pub, err := decodeAuthor(id)
	if err != nil {
		return nil, err
	}
	k := &authorKey{pub: pub}
	if kc == nil {
		return k, nil
	}
	// Expanding costs about a signature check: worth it only for a key
	// that is kept.
	k.expanded, _ = voi.NewExpandedPublicKey(voi.PublicKey(pub))
	kc.mu.Lock()
	kc.put(id, k)
	kc.mu.Unlock()
	return k, nil
}

// put remembers k as id's key in the current generation. kc.mu is held.
func (kc *keyCache) put(id string, k *authorKey) {
	if len(kc.cur) >= authorKeysKeep {
		kc.prev, kc.cur = kc.cur, make(map[string]*authorKey, authorKeysKeep)
	}
	kc.cur[id] = k
}

// len is how many keys are remembered.
func (kc *keyCache) len() int {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return len(kc.cur) + len(kc.prev)
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

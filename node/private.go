package node

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/pnet"

	"gossipchain/ledger"
)

// NewPSK returns a new random pre-shared key in the libp2p key file format
// (the one IPFS calls swarm.key), for --psk.
func NewPSK() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key) + "\n"), nil
}

// LoadPSK reads a pre-shared key file written by NewPSK (or any libp2p v1
// PSK file).
func LoadPSK(path string) (pnet.PSK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("psk file: %w", err)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("psk file %s is not a libp2p key file (make one with: gossipchain psk): %v", path, err)
	}
	return psk, nil
}

// LoadAuthors reads an authors file: one peer ID per line; blank lines and
// text after '#' are ignored. Every ID must be an Ed25519 peer ID.
func LoadAuthors(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authors file: %w", err)
	}
	defer f.Close()
	ids := []string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		id, _, _ := strings.Cut(sc.Text(), "#")
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		if _, err := ledger.AuthorKey(id); err != nil {
			return nil, fmt.Errorf("authors file %s line %d: %.60q is not an Ed25519 peer ID", path, line, id)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("authors file %s: %w", path, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("authors file %s lists no peer ID: nobody could add a block", path)
	}
	return ids, nil
}

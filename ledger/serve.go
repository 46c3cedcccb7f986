package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// MaxLocator bounds how many hashes a locator holds, and so how many a peer
// may send.
const MaxLocator = 64

// Locator returns main-chain hashes, newest first, from which a peer finds
// where its chain and this one part: the head and the nine blocks below it,
// then steps that double, then genesis.
func (c *Chain) Locator() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	step := 1
	for h := len(c.main) - 1; h > 0 && len(out) < MaxLocator-1; h -= step {
		out = append(out, c.main[h])
		if len(out) >= 10 {
			step *= 2
		}
	}
	return append(out, c.main[0])
}

// After returns the stored JSON of the main-chain blocks that follow the
// newest locator hash on this main chain: at most maxBlocks, and no more
// than maxBytes in total unless the first alone is larger. found is false if
// no locator hash is on this main chain (the peer has another genesis).
func (c *Chain) After(locator []string, maxBlocks, maxBytes int) (raw [][]byte, found bool, err error) {
	c.mu.RLock()
	from := -1
	for _, h := range locator {
		if c.onMain(h) {
			from = int(c.known[h]) + 1
			break
		}
	}
	var hashes []string
	if from >= 0 && from < len(c.main) {
		hashes = append(hashes, c.main[from:min(len(c.main), from+maxBlocks)]...)
	}
	fresh := c.unsyncedOf(hashes)
	c.mu.RUnlock()
	if from < 0 {
		return nil, false, nil
	}
	err = c.view(func(tx *bolt.Tx) error {
		size := 0
		for _, h := range hashes {
			var v []byte
			if b, ok := fresh[h]; ok {
				var err error
				if v, err = json.Marshal(b); err != nil {
					return err
				}
			} else if v = bytes.Clone(tx.Bucket(bucketBlocks).Get(hashKey(h))); v == nil {
				return fmt.Errorf("%w: block %s missing", ErrCorrupt, short(h))
			}
			if size += len(v); size > maxBytes && len(raw) > 0 {
				break
			}
			raw = append(raw, v)
		}
		return nil
	})
	return raw, true, err
}

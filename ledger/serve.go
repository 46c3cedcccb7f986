package ledger

import (
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
	r := c.reader()
	defer r.done()
	var out []string
	step := uint64(1)
	for h := c.head.Index; h > 0 && len(out) < MaxLocator-1; {
		m, err := r.mainAt(h)
		if err != nil {
			break // a store that fails to read: the locator is shorter
		}
		out = append(out, m)
		if len(out) >= 10 {
			step *= 2
		}
		if h < step {
			break
		}
		h -= step
	}
	return append(out, Genesis().Hash)
}

// After returns the JSON of the main-chain blocks that follow the newest
// locator hash on this main chain: at most maxBlocks, and no more than
// maxBytes in total unless the first alone is larger. found is false if no
// locator hash is on this main chain (the peer has another genesis). It
// costs O(len(locator) log n + maxBlocks), never O(chain).
func (c *Chain) After(locator []string, maxBlocks, maxBytes int) (raw [][]byte, found bool, err error) {
	from, found, err := c.forkPoint(locator)
	if err != nil || !found {
		return nil, found, err
	}
	hashes, fresh, err := c.mainSlice(from, maxBlocks)
	if err != nil {
		return nil, true, err
	}
	err = c.view(func(tx *bolt.Tx) error {
		size := 0
		for i, h := range hashes {
			b, ok := fresh[h]
			if !ok {
				var err error
				if b, err = getBody(tx, from+uint64(i), h); err != nil {
					return err
				}
			}
			v, err := json.Marshal(b)
			if err != nil {
				return fmt.Errorf("encode block %s: %w", b.Short(), err)
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

// forkPoint returns the height after the newest locator hash on the main
// chain.
func (c *Chain) forkPoint(locator []string) (uint64, bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, false, ErrClosed
	}
	r := c.reader()
	defer r.done()
	for _, h := range locator {
		m, ok, err := r.meta(h)
		if err != nil {
			return 0, false, err
		}
		if !ok || m.height > c.head.Index {
			continue
		}
		if on, err := r.mainAt(m.height); err != nil {
			return 0, false, err
		} else if on == h {
			return m.height + 1, true, nil
		}
	}
	return 0, false, nil
}

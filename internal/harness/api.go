package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"gossipchain/ledger"
)

// maxPage is the most blocks GET /blocks returns at once.
const maxPage = 1000

// Status is the part of GET /status launchers wait on (README's "HTTP
// API" has all of it).
type Status struct {
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	Height  uint64   `json:"height"`
	Head    string   `json:"head"`
	Peers   int      `json:"peers"`
	Mesh    int      `json:"mesh"`
	Pending int      `json:"pending"`
	Alone   bool     `json:"alone"`
	// Reachability is public, private or unknown.
	Reachability string            `json:"reachability"`
	Drops        map[string]uint64 `json:"drops"`
	// Syncing is non-empty while the node fetches blocks from a peer.
	Syncing json.RawMessage `json:"syncing,omitempty"`
}

// Call sends method path to the node's API, body (if not nil) as JSON,
// and decodes a 2xx answer into out (if not nil). Any other answer is an
// error naming its status and body.
func (n *Node) Call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.ready.API+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// Get is Call with GET.
func (n *Node) Get(path string, out any) error { return n.Call(http.MethodGet, path, nil, out) }

// Status reads GET /status.
func (n *Node) Status() (Status, error) {
	var s Status
	err := n.Get("/status", &s)
	return s, err
}

// Blocks reads one page of the main chain from index from: up to 1,000
// blocks, fewer at the head.
func (n *Node) Blocks(from uint64) ([]ledger.Block, error) {
	var page []ledger.Block
	err := n.Get(fmt.Sprintf("/blocks?from=%d&limit=%d", from, maxPage), &page)
	return page, err
}

// Chain reads the whole main chain, genesis first, page by page.
func (n *Node) Chain() ([]ledger.Block, error) {
	var all []ledger.Block
	for {
		page, err := n.Blocks(uint64(len(all)))
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < maxPage {
			return all, nil
		}
	}
}

// Append adds a block with data through POST /blocks and returns it.
func (n *Node) Append(data string) (ledger.Block, error) {
	var b ledger.Block
	err := n.Call(http.MethodPost, "/blocks", map[string]string{"data": data}, &b)
	return b, err
}

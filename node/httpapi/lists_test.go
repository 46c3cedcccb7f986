package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/protocol"
)

// emptyAt fails unless the JSON body holds an empty list (or, for a map
// such as drops, an empty object) at path: dot-separated keys and list
// indexes, "" for the body itself. null is not empty, it is absent.
func emptyAt(t *testing.T, what string, body []byte, path string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	if path != "" {
		for _, key := range strings.Split(path, ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[key]
			case []any:
				i, _ := strconv.Atoi(key)
				if i >= len(x) {
					t.Fatalf("%s: no %s in %s", what, path, body)
				}
				v = x[i]
			default:
				t.Fatalf("%s: no %s in %s", what, path, body)
			}
		}
	}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return
		}
	case map[string]any:
		if len(x) == 0 {
			return
		}
	}
	t.Errorf("%s: %q is %v, want [] ({} for a map) (body %s)", what, path, v, body)
}

// Every list a real node's API answers with is [] when empty: past the
// head, no peers, none blocked, a block nobody else sent or was sent.
func TestAPIEmptyLists(t *testing.T) {
	n := startNode(t, Options{})
	if _, err := n.Append(context.Background(), "alone"); err != nil {
		t.Fatal(err)
	}
	h := Handler(n, n.Chain(), Options{})
	for _, tc := range []struct {
		path  string
		lists []string
	}{
		{"/status", []string{"refused_branches"}},
		{"/blocks?from=2", []string{""}},
		{"/blocks?from=18446744073709551615&limit=1000", []string{""}},
		{"/peers", []string{""}},
		{"/peers/blocked", []string{""}},
		{"/blocks/1/trace?peers=1", []string{"copies", "forwarded_to", "peers"}},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tc.path, rec.Code, rec.Body)
		}
		for _, path := range tc.lists {
			emptyAt(t, "GET "+tc.path, rec.Body.Bytes(), path)
		}
	}
}

// nilLists plays every role that returns a list, returning nil for each:
// whatever a node (or a peer's answer) gives, the API's lists are [].
type nilLists struct {
	blocks     []*ledger.Block
	peers      []node.PeerInfo
	peerTraces []node.PeerTrace
}

func (f *nilLists) Head() *ledger.Block { return f.blocks[len(f.blocks)-1] }
func (f *nilLists) Height() uint64      { return f.Head().Index }
func (f *nilLists) Range(from uint64, limit int) ([]*ledger.Block, error) {
	if from >= uint64(len(f.blocks)) {
		return nil, nil
	}
	return f.blocks[from:min(uint64(len(f.blocks)), from+uint64(limit))], nil
}
func (f *nilLists) BlockAt(i uint64) (*ledger.Block, error) {
	bs, err := f.Range(i, 1)
	if len(bs) == 0 {
		return nil, err
	}
	return bs[0], err
}
func (f *nilLists) Status() node.Status      { return node.Status{} }
func (f *nilLists) Peers() []node.PeerInfo   { return f.peers }
func (f *nilLists) BlockPeer(peer.ID) error  { return nil }
func (f *nilLists) UnblockPeer(peer.ID) bool { return false }
func (f *nilLists) BlockedPeers() []string   { return nil }
func (f *nilLists) Trace(hash string) (*protocol.Trace, bool) {
	return &protocol.Trace{Hash: hash}, true
}
func (f *nilLists) PeerTraces(context.Context, string) []node.PeerTrace { return f.peerTraces }

// Each handler is built from the one role it reads, faked here.
func TestRoleEmptyLists(t *testing.T) {
	one := &nilLists{blocks: []*ledger.Block{ledger.Genesis()}}
	withPeer := &nilLists{
		blocks:     one.blocks,
		peers:      []node.PeerInfo{{ID: "p"}},
		peerTraces: []node.PeerTrace{{ID: "p", Trace: &protocol.Trace{Hash: ledger.Genesis().Hash}}},
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		path    string
		lists   []string
	}{
		{"blocks past the head", blocksHandler(one), "/blocks?from=1", []string{""}},
		{"no peers", peersHandler(one), "/peers", []string{""}},
		{"a peer with no addrs", peersHandler(withPeer), "/peers", []string{"0.addrs"}},
		{"none blocked", blockedHandler(one), "/peers/blocked", []string{""}},
		{"status", statusHandler(one), "/status", []string{"addrs", "drops", "refused_branches"}},
		{"trace, no peers", traceHandler(one, one), "/blocks/0/trace?peers=1", []string{"copies", "forwarded_to", "peers"}},
		{"trace, a peer's", traceHandler(withPeer, withPeer), "/blocks/0/trace?peers=1", []string{"copies", "forwarded_to", "peers.0.trace.copies", "peers.0.trace.forwarded_to"}},
	} {
		mux := http.NewServeMux()
		mux.Handle("GET /blocks", tc.handler)
		mux.Handle("GET /blocks/{id}/trace", tc.handler)
		mux.Handle("GET /{what}", tc.handler)
		mux.Handle("GET /peers/blocked", tc.handler)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.name, rec.Code, rec.Body)
		}
		for _, path := range tc.lists {
			emptyAt(t, tc.name, rec.Body.Bytes(), path)
		}
	}
}

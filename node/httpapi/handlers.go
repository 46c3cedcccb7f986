package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/protocol"
)

func statusHandler(n StatusReporter) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := n.Status()
		s.Addrs = orEmpty(s.Addrs)
		s.RefusedBranches = orEmpty(s.RefusedBranches)
		if s.Drops == nil {
			s.Drops = map[string]uint64{}
		}
		writeJSON(w, http.StatusOK, s)
	}
}

func blocksHandler(chain ChainReader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		from, err := queryUint(r, "from", 0)
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		limit, err := queryUint(r, "limit", defaultBlockLimit)
		if err != nil || limit == 0 || limit > maxBlockLimit {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to %d", maxBlockLimit)
			return
		}
		blocks, err := chain.Range(from, int(limit))
		if err != nil {
			writeError(w, http.StatusInternalServerError, "read chain: %v", err)
			return
		}
		writeJSON(w, http.StatusOK, orEmpty(blocks))
	}
}

func blockHandler(chain ChainReader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "block index %q is not a non-negative integer", r.PathValue("index"))
			return
		}
		if b, ok := blockAt(w, chain, i); ok {
			writeJSON(w, http.StatusOK, b)
		}
	}
}

// blockAt reads the main-chain block at index i, answering 404 or 500
// itself if it can't.
func blockAt(w http.ResponseWriter, chain ChainReader, i uint64) (*ledger.Block, bool) {
	b, err := chain.BlockAt(i)
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, "read chain: %v", err)
	case b == nil:
		writeError(w, http.StatusNotFound, "no block at index %d (height is %d)", i, chain.Height())
	default:
		return b, true
	}
	return nil, false
}

// traceAnswer is the body of GET /blocks/{id}/trace: this node's trace,
// and with ?peers=1 its connected peers' traces of the same block.
type traceAnswer struct {
	*protocol.Trace
	Peers *[]node.PeerTrace `json:"peers,omitempty"`
}

// traceHandler answers GET /blocks/{id}/trace, id being a block hash or a
// main-chain index.
func traceHandler(chain ChainReader, tracer Tracer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hash, ok := traceHash(w, r, chain)
		if !ok {
			return
		}
		peers := false
		switch v := r.URL.Query().Get("peers"); v {
		case "", "0", "false":
		case "1", "true":
			peers = true
		default:
			writeError(w, http.StatusBadRequest, "peers must be 1 or 0, got %.20q", v)
			return
		}
		t, ok := tracer.Trace(hash)
		if !ok {
			writeError(w, http.StatusNotFound, "no trace of block %s here (this node never had it since it started, or had %d newer blocks since)", hash, protocol.MaxTraces)
			return
		}
		out := traceAnswer{Trace: traceWithLists(t)}
		if peers {
			ctx, cancel := context.WithTimeout(r.Context(), traceTimeout)
			defer cancel()
			pt := peerTracesWithLists(tracer.PeerTraces(ctx, hash))
			out.Peers = &pt
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// traceHash is the hash of the block a trace request's id names: the id
// itself, or the hash of the main-chain block at that index. It answers
// 4xx or 500 itself if there is none.
func traceHash(w http.ResponseWriter, r *http.Request, chain ChainReader) (string, bool) {
	id := r.PathValue("id")
	if ledger.IsHash(id) {
		return id, true
	}
	i, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "block %.70q is neither a hash (64 lowercase hex digits) nor an index", id)
		return "", false
	}
	b, ok := blockAt(w, chain, i)
	if !ok {
		return "", false
	}
	return b.Hash, true
}

// traceWithLists returns a copy of t (which its owner may still be
// updating) whose lists encode as [] when empty.
func traceWithLists(t *protocol.Trace) *protocol.Trace {
	if t == nil {
		return nil
	}
	c := *t
	c.Copies = orEmpty(c.Copies)
	c.ForwardedTo = orEmpty(c.ForwardedTo)
	return &c
}

// peerTracesWithLists is pts with every list encoding as [] when empty: a
// peer's answer may carry null for an empty list.
func peerTracesWithLists(pts []node.PeerTrace) []node.PeerTrace {
	out := make([]node.PeerTrace, len(pts))
	for i, pt := range pts {
		pt.Trace = traceWithLists(pt.Trace)
		out[i] = pt
	}
	return out
}

func appendHandler(n Appender) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Data *string `json:"data"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		switch {
		case req.Data == nil || *req.Data == "":
			writeError(w, http.StatusBadRequest, `body must be {"data": "<non-empty text>"}`)
			return
		case len(*req.Data) > ledger.MaxDataBytes:
			writeError(w, http.StatusRequestEntityTooLarge, "data is %d bytes, limit %d", len(*req.Data), ledger.MaxDataBytes)
			return
		}
		p, err := n.Append(r.Context(), *req.Data)
		if p.Block == nil {
			if ledger.Code(err) != 0 {
				writeError(w, http.StatusBadRequest, "%v", err)
			} else {
				writeError(w, http.StatusInternalServerError, "%v", err)
			}
			return
		}
		// Stored but not yet sent to any peer is still a stored block: it
		// reaches them when they connect (err says so; the node logs it).
		writeJSON(w, http.StatusCreated, p.Block)
	}
}

func peersHandler(n PeerLister) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		peers := n.Peers()
		out := make([]node.PeerInfo, len(peers))
		for i, p := range peers {
			p.Addrs = orEmpty(p.Addrs)
			out[i] = p
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func connectHandler(n Connector) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Addr string `json:"addr"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		addr, err := ma.NewMultiaddr(req.Addr)
		if err != nil {
			writeError(w, http.StatusBadRequest, "addr %q is not a multiaddr: %v", req.Addr, err)
			return
		}
		if !hasP2P(addr) {
			writeError(w, http.StatusBadRequest, "addr %q must end in /p2p/<peer id>", req.Addr)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), connectTimeout)
		defer cancel()
		id, err := n.Connect(ctx, addr)
		if err != nil {
			writeError(w, http.StatusBadGateway, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": id.String()})
	}
}

func blockedHandler(n Blocklist) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, orEmpty(n.BlockedPeers()))
	}
}

// blockPeerHandler blocks a peer: {"id": "<peer id>"}.
func blockPeerHandler(n Blocklist) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		id, err := peer.Decode(req.ID)
		if err != nil {
			writeError(w, http.StatusBadRequest, "id %.80q is not a peer ID: %v", req.ID, err)
			return
		}
		if err := n.BlockPeer(id); err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id.String(), "blocked": true})
	}
}

func unblockHandler(n Blocklist) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := peer.Decode(r.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "%.80q is not a peer ID: %v", r.PathValue("id"), err)
			return
		}
		if !n.UnblockPeer(id) {
			writeError(w, http.StatusNotFound, "peer %s is not blocked", id)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id.String(), "blocked": false})
	}
}

// orEmpty is s, or an empty slice if s is nil: the API's lists encode as
// [] when empty, never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func hasP2P(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_P2P)
	return err == nil
}

func queryUint(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s must be a non-negative integer, got %q", name, s)
	}
	return v, nil
}

// readJSON decodes a size-limited JSON body into v, answering 4xx itself if
// it can't.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := protocol.DecodeStrict(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body is larger than %d bytes", MaxBodyBytes)
		} else {
			writeError(w, http.StatusBadRequest, "bad JSON body: %v", err)
		}
		return false
	}
	return true
}

// cleanPath is the canonical form of an API path, as http.ServeMux sees it:
// no "." or ".." elements, no repeated slashes, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	clean := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// API limits.
const (
	defaultBlockLimit = 100
	maxBlockLimit     = 1000
	connectTimeout    = 10 * time.Second
)

// startAPI serves the HTTP API on addr (host:port; port 0 picks one).
func (n *Node) startAPI(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api address %q: %v", addr, err)
	}
	if !isLoopback(host) && n.cfg.APIToken == "" {
		return fmt.Errorf("api address %s is not loopback: refusing to serve it without an API token (--api-token)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w", addr, err)
	}
	n.apiLn = ln
	n.api = &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api server stopped", "err", err)
		}
	}()
	return nil
}

// isLoopback reports whether host (an IP or "localhost") is a loopback
// address. An empty host means every interface, which is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// The HTTP API's own limits (policy of this node, not of the protocol).
const (
	// maxAPIBodyBytes bounds an HTTP API request body.
	maxAPIBodyBytes = 64 << 10
	// apiRequestsPerSecond and apiRequestBurst rate-limit the HTTP API per
	// client address; more get 429.
	apiRequestsPerSecond = 500
	apiRequestBurst      = 1000
)

// APIAddr returns the address the HTTP API listens on, or "" if it is off.
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// Handler returns the HTTP API. Every response is JSON; a client's mistake
// gets a 4xx with {"error": "..."}.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", n.handleStatus)
	mux.HandleFunc("GET /blocks", n.handleBlocks)
	mux.HandleFunc("GET /blocks/{index}", n.handleBlock)
	mux.HandleFunc("POST /blocks", n.handleAppend)
	mux.HandleFunc("GET /peers", n.handlePeers)
	mux.HandleFunc("POST /peers", n.handleConnect)
	mux.HandleFunc("GET /events", n.handleEvents)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.Handle("GET /{$}", dashboard())
	mux.Handle("GET /static/", dashboard())
	limit := newRateLimiter(apiRequestsPerSecond, apiRequestBurst, n.cfg.clock)
	token := []byte("Bearer " + n.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard's files are public: the page asks for the token.
		public := r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/")
		if !public && n.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), token) != 1 {
			n.drop("api_unauthorized")
			w.Header().Set("WWW-Authenticate", `Bearer realm="gossipchain"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer <token>)")
			return
		}
		client, _, _ := net.SplitHostPort(r.RemoteAddr)
		if !limit.allow(client) {
			n.drop("api_rate_limited")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "more than %d requests per second from %s", apiRequestsPerSecond, client)
			return
		}
		if clean := cleanPath(r.URL.Path); clean != r.URL.Path {
			// The mux would redirect with an HTML body; redirect in JSON.
			u := *r.URL
			u.Path, u.RawPath = clean, ""
			w.Header().Set("Location", u.String())
			writeJSON(w, http.StatusTemporaryRedirect, map[string]string{"error": "path is not canonical", "location": u.String()})
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			// The mux's own 404 and 405 are plain text; answer in JSON.
			code := http.StatusNotFound
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				probe := r.Clone(r.Context())
				probe.Method = m
				if _, p := mux.Handler(probe); p != "" {
					code = http.StatusMethodNotAllowed
				}
			}
			writeError(w, code, "%s %s: %s", r.Method, r.URL.Path, http.StatusText(code))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Status is the body of GET /status.
type Status struct {
	ID     string            `json:"id"`
	Addrs  []string          `json:"addrs"`
	Height uint64            `json:"height"`
	Head   string            `json:"head"`
	Peers  int               `json:"peers"`
	Mesh   int               `json:"mesh"`
	Drops  map[string]uint64 `json:"drops"`
	// Pending counts lines typed here waiting to be appended again after a
	// reorg; Syncing is set while blocks are fetched from a peer.
	Pending int `json:"pending"`
	// Alone is set when every peer this node had is gone: blocks added
	// now reach the others when one returns.
	Alone   bool          `json:"alone"`
	Syncing *SyncProgress `json:"syncing,omitempty"`
}

// Status returns what GET /status reports.
func (n *Node) Status() Status {
	head := n.chain.Head()
	s := Status{
		ID:      n.ID().String(),
		Height:  head.Index,
		Head:    head.Hash,
		Peers:   len(n.host.Network().Peers()),
		Mesh:    n.MeshPeers(),
		Drops:   n.Drops(),
		Addrs:   []string{},
		Pending: n.chain.PendingLines(),
		Alone:   n.alone.Load(),
		Syncing: n.sync.Progress(),
	}
	for _, a := range n.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	return s
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.Status())
}

func (n *Node) handleBlocks(w http.ResponseWriter, r *http.Request) {
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
	blocks, err := n.chain.Range(from, int(limit))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read chain: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, blocks)
}

func (n *Node) handleBlock(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "block index %q is not a non-negative integer", r.PathValue("index"))
		return
	}
	b, err := n.chain.BlockAt(i)
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, "read chain: %v", err)
	case b == nil:
		writeError(w, http.StatusNotFound, "no block at index %d (height is %d)", i, n.chain.Height())
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

func (n *Node) handleAppend(w http.ResponseWriter, r *http.Request) {
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
	if err != nil {
		n.log.Warn("publish block", "index", p.Block.Index, "err", err)
	}
	writeJSON(w, http.StatusCreated, p.Block)
}

func (n *Node) handlePeers(w http.ResponseWriter, _ *http.Request) {
	peers := n.Peers()
	if peers == nil {
		peers = []PeerInfo{}
	}
	writeJSON(w, http.StatusOK, peers)
}

func (n *Node) handleConnect(w http.ResponseWriter, r *http.Request) {
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
	if err := protocol.DecodeStrict(http.MaxBytesReader(w, r.Body, maxAPIBodyBytes), v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body is larger than %d bytes", maxAPIBodyBytes)
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

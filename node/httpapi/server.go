// Package httpapi serves a gossipchain node's HTTP API: the JSON endpoints,
// Server-Sent Events, Prometheus metrics and the dashboard. It depends on a
// small Node interface, which *node.Node satisfies; nothing in the node's
// p2p side depends on it. It may import ledger, protocol, node and the
// standard library (and promhttp for metrics through the node).
package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/node/internal/ratelimit"
	"gossipchain/protocol"
)

// Node is what the API needs of a node.
type Node interface {
	Status() node.Status
	Chain() *ledger.Chain
	Append(ctx context.Context, data string) (node.Published, error)
	Peers() []node.PeerInfo
	Connect(ctx context.Context, addr ma.Multiaddr) (peer.ID, error)
	// Subscribe follows the node's events until cancel is called or the
	// node closes (the channel is closed then).
	Subscribe() (events <-chan node.Event, cancel func())
	// MetricsHandler serves the node's Prometheus registry.
	MetricsHandler() http.Handler
	// CountDrop counts a refused request under reason (shown in /status).
	CountDrop(reason string)
	// Trace is the node's record of how a block reached it; PeerTraces
	// asks every connected peer for its own.
	Trace(hash string) (*protocol.Trace, bool)
	PeerTraces(ctx context.Context, hash string) []node.PeerTrace
	// BlockPeer disconnects a peer and refuses it until UnblockPeer.
	BlockPeer(p peer.ID) error
	UnblockPeer(p peer.ID) bool
	BlockedPeers() []string
}

// The API's own limits: this node's policy, not the protocol's.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// RequestsPerSecond and RequestBurst rate-limit requests per client
	// address; more get 429.
	RequestsPerSecond = 500
	RequestBurst      = 1000

	// MaxEventStreams bounds the GET /events streams open at once; more
	// get 503.
	MaxEventStreams = 64
	// MaxClientRequests bounds the requests one client address has in
	// flight at once (event streams included); more get 503.
	MaxClientRequests = 32

	// Server timeouts: a request's headers and body must arrive within
	// readTimeout, an answer must be written within writeTimeout (an event
	// stream's deadline moves with each event or heartbeat), and an idle
	// keep-alive connection is closed after idleTimeout.
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 2 * time.Minute

	defaultBlockLimit = 100
	maxBlockLimit     = 1000
	connectTimeout    = 10 * time.Second
	// traceTimeout bounds asking the peers for their traces (?peers=1).
	traceTimeout = 5 * time.Second
)

// Options configure the API.
type Options struct {
	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every request but the dashboard's files.
	Token string
	// Logger receives the API's logs; nil discards them.
	Logger *slog.Logger
	// Clock, if set, replaces time.Now for the rate limit (tests).
	Clock func() time.Time
}

// Server is the API listening on an address.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// CheckAddr refuses an address the API must not serve on: not host:port,
// or not loopback without a token.
func CheckAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api address %q: %v", addr, err)
	}
	if !isLoopback(host) && token == "" {
		return fmt.Errorf("api address %s is not loopback: refusing to serve it without an API token (--api-token)", addr)
	}
	return nil
}

// Start serves the API for n on addr (host:port; port 0 picks one).
func Start(addr string, n Node, opts Options) (*Server, error) {
	if err := CheckAddr(addr, opts.Token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           Handler(n, opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the API and closes its connections.
func (s *Server) Close() error { return s.srv.Close() }

// isLoopback reports whether host (an IP or "localhost") is a loopback
// address. An empty host means every interface, which is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler returns the API for n. Every response is JSON; a client's mistake
// gets a 4xx with {"error": "..."}.
func Handler(n Node, opts Options) http.Handler {
	a := &api{n: n, streams: make(chan struct{}, MaxEventStreams), inFlight: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", a.handleStatus)
	mux.HandleFunc("GET /blocks", a.handleBlocks)
	mux.HandleFunc("GET /blocks/{index}", a.handleBlock)
	mux.HandleFunc("GET /blocks/{id}/trace", a.handleTrace)
	mux.HandleFunc("POST /blocks", a.handleAppend)
	mux.HandleFunc("GET /peers", a.handlePeers)
	mux.HandleFunc("POST /peers", a.handleConnect)
	mux.HandleFunc("GET /peers/blocked", a.handleBlocked)
	mux.HandleFunc("POST /peers/blocked", a.handleBlockPeer)
	mux.HandleFunc("DELETE /peers/blocked/{id}", a.handleUnblock)
	mux.HandleFunc("GET /events", a.handleEvents)
	mux.Handle("GET /metrics", n.MetricsHandler())
	mux.Handle("GET /{$}", dashboard())
	mux.Handle("GET /static/", dashboard())
	limit := ratelimit.New(RequestsPerSecond, RequestBurst, opts.Clock)
	token := []byte("Bearer " + opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard's files are public: the page asks for the token.
		public := r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/")
		if !public && opts.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), token) != 1 {
			n.CountDrop("api_unauthorized")
			w.Header().Set("WWW-Authenticate", `Bearer realm="gossipchain"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer <token>)")
			return
		}
		client, _, _ := net.SplitHostPort(r.RemoteAddr)
		if !limit.Allow(client) {
			n.CountDrop("api_rate_limited")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "more than %d requests per second from %s", RequestsPerSecond, client)
			return
		}
		if !a.enter(client) {
			n.CountDrop("api_client_busy")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "more than %d requests at once from %s", MaxClientRequests, client)
			return
		}
		defer a.leave(client)
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
			for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
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

// api holds the handlers' shared state.
type api struct {
	n       Node
	streams chan struct{} // one token per open event stream

	mu       sync.Mutex     // guards inFlight
	inFlight map[string]int // requests in flight per client address
}

// enter counts a request from client in, unless it has MaxClientRequests
// in flight already.
func (a *api) enter(client string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[client] >= MaxClientRequests {
		return false
	}
	a.inFlight[client]++
	return true
}

func (a *api) leave(client string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[client]--; a.inFlight[client] <= 0 {
		delete(a.inFlight, client)
	}
}

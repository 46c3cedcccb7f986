// Package httpapi serves a gossipchain node's HTTP API: the JSON endpoints,
// Server-Sent Events, Prometheus metrics and the dashboard; and the
// metrics port, GET /metrics alone (metrics.go). Each handler
// depends on the small role of the node it uses (ChainReader, Appender,
// PeerLister, ...; roles.go), and Node composes them but the chain reader,
// given apart: *node.Node is a Node, and its Chain() a ChainReader. Nothing
// in the node's p2p side depends on this package. It imports ledger and
// protocol, package node for the types the roles return (Status, PeerInfo,
// Event...), node/internal/ratelimit, go-libp2p's peer IDs, go-multiaddr
// and the standard library; the metrics handler comes from the node.
package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"gossipchain/node/internal/ratelimit"
)

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
	// flight at once; more get 503. Event streams are not among them:
	// they are long-lived and MaxEventStreams bounds them, so a client
	// holding streams (dashboard tabs on one machine, a reverse proxy in
	// front of the API) still gets its short requests answered.
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

// Server is the API, or the metrics port, listening on an address.
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

// Start serves the API for n and its chain on addr (host:port; port 0
// picks one).
func Start(addr string, n Node, chain ChainReader, opts Options) (*Server, error) {
	if err := CheckAddr(addr, opts.Token); err != nil {
		return nil, err
	}
	return serve(addr, Handler(n, chain, opts), opts.Logger, "api")
}

// serve serves h on addr with the API's timeouts; what names the server
// in errors and logs.
func serve(addr string, h http.Handler, log *slog.Logger, what string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen on %s: %w", what, addr, err)
	}
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes its connections.
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

// Handler returns the API for n and its chain. Every response is JSON; a client's mistake
// gets a 4xx with {"error": "..."}.
func Handler(n Node, chain ChainReader, opts Options) http.Handler {
	var token []byte
	if opts.Token != "" {
		token = []byte("Bearer " + opts.Token)
	}
	return &gate{
		mux:      routes(n, chain),
		drops:    n,
		token:    token,
		limit:    ratelimit.New(RequestsPerSecond, RequestBurst, opts.Clock),
		inFlight: map[string]int{},
	}
}

// routes maps each endpoint to its handler, giving each the roles it uses.
func routes(n Node, chain ChainReader) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /status", statusHandler(n))
	mux.Handle("GET /blocks", blocksHandler(chain))
	mux.Handle("GET /blocks/{index}", blockHandler(chain))
	mux.Handle("GET /blocks/{id}/trace", traceHandler(chain, n))
	mux.Handle("POST /blocks", appendHandler(n))
	mux.Handle("GET /peers", peersHandler(n))
	mux.Handle("POST /peers", connectHandler(n))
	mux.Handle("GET /peers/blocked", blockedHandler(n))
	mux.Handle("POST /peers/blocked", blockPeerHandler(n))
	mux.Handle("DELETE /peers/blocked/{id}", unblockHandler(n))
	mux.Handle("GET /events", eventsHandler(n, chain, n))
	mux.Handle("GET /metrics", n.MetricsHandler())
	mux.Handle("GET /{$}", dashboard())
	mux.Handle("GET /static/", dashboard())
	return mux
}

// gate lets a request through to the API's routes, or answers it itself:
// no token, too many requests, a path that is not canonical or not served.
type gate struct {
	mux   *http.ServeMux
	drops DropCounter
	token []byte // "Bearer <token>"; nil if none is required
	limit *ratelimit.Limiter

	mu       sync.Mutex     // guards inFlight
	inFlight map[string]int // requests in flight per client address
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.authorized(w, r) {
		return
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !g.limit.Allow(client) {
		g.drops.CountDrop("api_rate_limited")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "more than %d requests per second from %s", RequestsPerSecond, client)
		return
	}
	if !isEventStream(r) {
		if !g.enter(client) {
			g.drops.CountDrop("api_client_busy")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "more than %d requests at once from %s", MaxClientRequests, client)
			return
		}
		defer g.leave(client)
	}
	if redirectCanonical(w, r) || !g.routed(w, r) {
		return
	}
	g.mux.ServeHTTP(w, r)
}

// authorized checks the token, answering 401 itself if it is wrong.
func (g *gate) authorized(w http.ResponseWriter, r *http.Request) bool {
	// The dashboard's files are public: the page asks for the token.
	public := r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/")
	if public || g.token == nil || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), g.token) == 1 {
		return true
	}
	g.drops.CountDrop("api_unauthorized")
	w.Header().Set("WWW-Authenticate", `Bearer realm="gossipchain"`)
	writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer <token>)")
	return false
}

// redirectCanonical answers a path that is not canonical with a redirect
// to the one that is: the mux would redirect with an HTML body.
func redirectCanonical(w http.ResponseWriter, r *http.Request) bool {
	clean := cleanPath(r.URL.Path)
	if clean == r.URL.Path {
		return false
	}
	u := *r.URL
	u.Path, u.RawPath = clean, ""
	w.Header().Set("Location", u.String())
	writeJSON(w, http.StatusTemporaryRedirect, map[string]string{"error": "path is not canonical", "location": u.String()})
	return true
}

// routed reports whether the mux serves r, answering 404 or 405 in JSON
// itself if not: the mux's own are plain text.
func (g *gate) routed(w http.ResponseWriter, r *http.Request) bool {
	if _, pattern := g.mux.Handler(r); pattern != "" {
		return true
	}
	code := http.StatusNotFound
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := g.mux.Handler(probe); p != "" {
			code = http.StatusMethodNotAllowed
		}
	}
	writeError(w, code, "%s %s: %s", r.Method, r.URL.Path, http.StatusText(code))
	return false
}

// isEventStream reports whether r asks for the event stream, which is
// bounded by MaxEventStreams and not counted as a request in flight.
func isEventStream(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/events"
}

// enter counts a request from client in, unless it has MaxClientRequests
// in flight already.
func (g *gate) enter(client string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[client] >= MaxClientRequests {
		return false
	}
	g.inFlight[client]++
	return true
}

func (g *gate) leave(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[client]--; g.inFlight[client] <= 0 {
		delete(g.inFlight, client)
	}
}

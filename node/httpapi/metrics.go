package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"gossipchain/node/internal/ratelimit"
)

// The metrics port (--metrics): GET /metrics alone, with no token, for a
// Prometheus that must not hold the API's write token. It serves nothing
// but the node's counters and gauges (heights, peers, drops, the Go
// runtime and libp2p's own figures): no block, key or token, nothing to
// write. So, unlike the API, it may listen beyond loopback without a
// token; its address must name the host, so that it never listens on
// every interface by a forgotten one.

// The metrics port's limits. A scrape every few seconds per Prometheus is
// the use; more is refused cheaply.
const (
	// MetricsRequestsPerSecond and MetricsBurst rate-limit requests per
	// client address; more get 429.
	MetricsRequestsPerSecond = 10
	MetricsBurst             = 20
	// MaxMetricsRequests bounds the scrapes in flight at once, from all
	// clients; more get 503.
	MaxMetricsRequests = 4
)

// MetricsNode is what the metrics port needs of a node: its registry,
// and where to count refused requests.
type MetricsNode interface {
	MetricsSource
	DropCounter
}

// CheckMetricsAddr refuses an address the metrics port must not serve on:
// not HOST:PORT, or with no host.
func CheckMetricsAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %v", addr, err)
	}
	if host == "" {
		return fmt.Errorf("metrics address %q names no host: give 127.0.0.1%s for this machine only, or 0.0.0.0%s for every interface", addr, addr, addr)
	}
	return nil
}

// StartMetrics serves n's metrics alone on addr (HOST:PORT; port 0 picks
// one), with no token.
func StartMetrics(addr string, n MetricsNode, opts Options) (*Server, error) {
	if err := CheckMetricsAddr(addr); err != nil {
		return nil, err
	}
	return serve(addr, MetricsHandler(n, opts), opts.Logger, "metrics")
}

// MetricsHandler answers GET (and HEAD) /metrics from n's registry, and
// everything else with a JSON error.
func MetricsHandler(n MetricsNode, opts Options) http.Handler {
	return &metricsGate{
		metrics:  n.MetricsHandler(),
		drops:    n,
		limit:    ratelimit.New(MetricsRequestsPerSecond, MetricsBurst, opts.Clock),
		inFlight: make(chan struct{}, MaxMetricsRequests),
	}
}

type metricsGate struct {
	metrics  http.Handler
	drops    DropCounter
	limit    *ratelimit.Limiter
	inFlight chan struct{} // a token per scrape in flight
}

func (g *metricsGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		writeError(w, http.StatusNotFound, "%s: this port serves GET /metrics only (the API, if any, is on --api)", strings.ToValidUTF8(r.URL.Path, "?"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "%s /metrics: this port is read-only", r.Method)
		return
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !g.limit.Allow(client) {
		g.drops.CountDrop("metrics_rate_limited")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "more than %d scrapes per second from %s", MetricsRequestsPerSecond, client)
		return
	}
	select {
	case g.inFlight <- struct{}{}:
		defer func() { <-g.inFlight }()
	default:
		g.drops.CountDrop("metrics_busy")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "%d scrapes are in flight already", MaxMetricsRequests)
		return
	}
	g.metrics.ServeHTTP(w, r)
}

package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/node/internal/ratelimit"
)

func TestCheckMetricsAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9001": true, "0.0.0.0:9001": true, "[::1]:0": true, "localhost:9001": true, "192.0.2.1:9001": true,
		":9001": false, "9001": false, "127.0.0.1": false, "": false,
	} {
		if err := CheckMetricsAddr(addr); (err == nil) != ok {
			t.Errorf("CheckMetricsAddr(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

// The metrics port serves GET /metrics with no token, whatever the API's,
// and nothing else.
func TestMetricsPort(t *testing.T) {
	n := startNode(t, Options{})
	srv, err := StartMetrics("127.0.0.1:0", n, Options{Token: "the API's"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := "http://" + srv.Addr()
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "\ngossipchain_chain_height 0\n") {
		t.Fatalf("GET /metrics with no token: %d\n%.300s", code, body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"HEAD", "/metrics", http.StatusOK},
		{"POST", "/metrics", http.StatusMethodNotAllowed},
		{"DELETE", "/metrics", http.StatusMethodNotAllowed},
		{"GET", "/status", http.StatusNotFound},
		{"POST", "/blocks", http.StatusNotFound},
		{"GET", "/", http.StatusNotFound},
		{"GET", "/metrics/", http.StatusNotFound},
	} {
		code, body := do(tc.method, tc.path)
		if code != tc.code || (tc.method != "HEAD" && code != http.StatusOK && !strings.Contains(body, `"error"`)) {
			t.Errorf("%s %s: %d %q, want %d (and a JSON error)", tc.method, tc.path, code, body, tc.code)
		}
	}
	if n.Chain().Height() != 0 {
		t.Fatal("something was written through the metrics port")
	}
}

// Scrapes are bounded: a client past its burst gets 429, and past
// MaxMetricsRequests in flight everyone gets 503; both are counted.
func TestMetricsPortBounds(t *testing.T) {
	clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
	n := startNode(t, Options{})
	h := MetricsHandler(n, Options{Clock: clock.Now})
	get := func(client string) int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = client
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	limited := 0
	for range MetricsBurst + 5 {
		if get("127.0.0.1:1") == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 5 || n.Drops()["metrics_rate_limited"] != 5 {
		t.Fatalf("%d of %d scrapes limited, drops %v; want the 5 past the burst", limited, MetricsBurst+5, n.Drops())
	}
	if code := get("127.0.0.2:1"); code != http.StatusOK {
		t.Fatalf("another client: %d", code)
	}

	// Scrapes that do not finish (a registry held up) fill the places.
	release := make(chan struct{})
	var started sync.WaitGroup
	slow := &slowMetrics{MetricsNode: n, release: release, started: &started}
	h = MetricsHandler(slow, Options{Clock: clock.Now})
	var served sync.WaitGroup
	started.Add(MaxMetricsRequests)
	for i := range MaxMetricsRequests {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = fmt.Sprintf("127.0.1.%d:1", i+1)
		served.Go(func() { h.ServeHTTP(httptest.NewRecorder(), req) })
	}
	started.Wait()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "127.0.2.1:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	close(release)
	served.Wait()
	if rec.Code != http.StatusServiceUnavailable || n.Drops()["metrics_busy"] != 1 {
		t.Fatalf("a scrape past %d in flight: %d, drops %v", MaxMetricsRequests, rec.Code, n.Drops())
	}
}

// slowMetrics is a node whose registry answers only once released.
type slowMetrics struct {
	MetricsNode
	release <-chan struct{}
	started *sync.WaitGroup
}

func (s *slowMetrics) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.started.Done()
		<-s.release
	})
}

package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/node/internal/ratelimit"
)

// *node.Node is the node the API serves (main.go's Start call proves it
// too, but only when the whole module builds).
var _ Node = (*node.Node)(nil)

// startNode starts a node on a temporary data dir, closed when the test
// ends. The options are the API's, for the caller to use.
func startNode(t *testing.T, _ Options) *node.Node {
	t.Helper()
	n, err := node.New(node.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestAPIErrors(t *testing.T) {
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{})
	cases := []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/blocks", `{"data":"ok"}`, http.StatusCreated},
		{"GET", "/blocks/1", "", http.StatusOK},
		{"POST", "/blocks", `{"data":`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":""}`, http.StatusBadRequest},
		{"POST", "/blocks", `{}`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":"x","more":1}`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":"` + strings.Repeat("x", ledger.MaxDataBytes+1) + `"}`, http.StatusRequestEntityTooLarge},
		{"POST", "/blocks", `{"data":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"GET", "/blocks?limit=0", "", http.StatusBadRequest},
		{"GET", "/blocks?from=-1", "", http.StatusBadRequest},
		{"GET", "/blocks/abc", "", http.StatusBadRequest},
		{"GET", "/blocks/99", "", http.StatusNotFound},
		{"GET", "/nope", "", http.StatusNotFound},
		{"GET", "/blocks//1", "", http.StatusTemporaryRedirect},
		{"GET", "/static/../status", "", http.StatusTemporaryRedirect},
		{"DELETE", "/blocks", "", http.StatusMethodNotAllowed},
		{"POST", "/peers", `{"addr":"not a multiaddr"}`, http.StatusBadRequest},
		{"POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1"}`, http.StatusBadRequest},
		{"GET", "/blocks/1/trace", "", http.StatusOK},
		{"GET", "/blocks/1/trace?peers=1", "", http.StatusOK},
		{"GET", "/blocks/0/trace", "", http.StatusNotFound}, // genesis reached nobody
		{"GET", "/blocks/99/trace", "", http.StatusNotFound},
		{"GET", "/blocks/" + strings.Repeat("ab", 32) + "/trace", "", http.StatusNotFound},
		{"GET", "/blocks/" + strings.Repeat("AB", 32) + "/trace", "", http.StatusBadRequest},
		{"GET", "/blocks/xyz/trace", "", http.StatusBadRequest},
		{"GET", "/blocks/1/trace?peers=yes", "", http.StatusBadRequest},
		{"GET", "/peers/blocked", "", http.StatusOK},
		{"POST", "/peers/blocked", `{"id":"not a peer"}`, http.StatusBadRequest},
		{"POST", "/peers/blocked", `{"id":"12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"}`, http.StatusOK},
		{"DELETE", "/peers/blocked/12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB", "", http.StatusOK},
		{"DELETE", "/peers/blocked/12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB", "", http.StatusNotFound},
		{"DELETE", "/peers/blocked/xyz", "", http.StatusBadRequest},
		{"PUT", "/peers/blocked", "", http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if rec.Code != tc.code {
			t.Errorf("%s %s %.40q: %d %s, want %d", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.code)
			continue
		}
		if rec.Code == http.StatusTemporaryRedirect && rec.Header().Get("Location") != path.Clean(tc.path) {
			t.Errorf("%s %s: redirected to %q, want %q", tc.method, tc.path, rec.Header().Get("Location"), path.Clean(tc.path))
		}
		if rec.Code >= 300 {
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: error body %q is not {\"error\": ...}", tc.method, tc.path, rec.Body)
			}
		}
	}
	if n.Chain().Height() != 1 {
		t.Errorf("height %d after one good POST, want 1", n.Chain().Height())
	}
}

// A block's trace, by index and by hash, with the peers' (none here).
func TestAPITrace(t *testing.T) {
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{})
	p, err := n.Append(context.Background(), "traced")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", p.Block.Hash} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/blocks/"+id+"/trace?peers=1", nil))
		var got struct {
			Hash        string            `json:"hash"`
			FirstSeenMS int64             `json:"first_seen_ms"`
			From        *string           `json:"from"`
			Via         string            `json:"via"`
			Duplicates  *int              `json:"duplicates"`
			Peers       *[]node.PeerTrace `json:"peers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("trace of %s: %d %s", id, rec.Code, rec.Body)
		}
		if got.Hash != p.Block.Hash || got.Via != "local" || got.From == nil || *got.From != "" || got.Duplicates == nil ||
			got.FirstSeenMS < p.Block.Timestamp || got.Peers == nil || len(*got.Peers) != 0 {
			t.Fatalf("trace of %s: %s", id, rec.Body)
		}
	}
}

func TestAPIToken(t *testing.T) {
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{Token: "s3cret"})
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusOK},
	} {
		req := httptest.NewRequest("GET", "/status", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, rec.Code, tc.code)
		}
	}
	// A non-loopback API without a token is refused before anything
	// listens (192.0.2.1 is a documentation address: it could not bind).
	if _, err := Start("192.0.2.1:0", n, n.Chain(), Options{}); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("non-loopback API without token: %v", err)
	}
	for _, host := range []string{"127.0.0.1", "127.8.9.1", "::1", "localhost"} {
		if !isLoopback(host) {
			t.Errorf("%s is loopback", host)
		}
	}
	for _, host := range []string{"", "0.0.0.0", "::", "192.0.2.1", "example.com"} {
		if isLoopback(host) {
			t.Errorf("%q is not loopback", host)
		}
	}
}

func TestAPIRateLimit(t *testing.T) {
	// The limiter judges time by the node's clock, which stands still here:
	// however slow the machine, exactly the burst gets through.
	clock := ratelimit.NewManualClock(time.Unix(1_700_000_000, 0))
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{Clock: clock.Now})
	get := func(remote string) int {
		req := httptest.NewRequest("GET", "/status", nil)
		if remote != "" {
			req.RemoteAddr = remote
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	limited := 0
	for range RequestBurst + 200 {
		if get("") == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 200 || n.Drops()["api_rate_limited"] != 200 {
		t.Fatalf("%d of %d requests limited, drops %v; want the 200 past the burst", limited, RequestBurst+200, n.Drops())
	}
	// Another client is not affected.
	if code := get("127.0.0.2:1234"); code != http.StatusOK {
		t.Fatalf("another client got %d", code)
	}
	// A second later the bucket has refilled by the rate, and no more.
	clock.Add(time.Second)
	ok := 0
	for range RequestsPerSecond + 10 {
		if get("") == http.StatusOK {
			ok++
		}
	}
	if ok != RequestsPerSecond {
		t.Fatalf("%d requests allowed a second after the burst, want %d", ok, RequestsPerSecond)
	}
}

func TestEventsStream(t *testing.T) {
	n := startNode(t, Options{})
	srv := httptest.NewServer(Handler(n, n.Chain(), Options{}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan node.Event, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e node.Event
				if json.Unmarshal([]byte(data), &e) == nil {
					events <- e
				}
			}
		}
	}()
	next := func(typ string) node.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("stream ended waiting for a %s event", typ)
				}
				if e.Type == typ {
					return e
				}
			case <-deadline:
				t.Fatalf("no %s event within 10s", typ)
			}
		}
	}
	if e := next("head"); e.Height != 0 {
		t.Fatalf("first event: head at %d, want the current head (0)", e.Height)
	}
	post, err := http.Post(srv.URL+"/blocks", "application/json", strings.NewReader(`{"data":"live"}`))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if e := next("block"); e.Block == nil || e.Block.Data != "live" || e.Origin != "local" {
		t.Fatalf("block event %+v", e)
	}
	if e := next("head"); e.Height != 1 {
		t.Fatalf("head event at %d, want 1", e.Height)
	}
	// A peer connecting is an event too.
	other := startNode(t, Options{})
	if _, err := other.Connect(context.Background(), n.Addr()); err != nil {
		t.Fatal(err)
	}
	if e := next("peer"); e.Peer != other.ID().String() || !e.Connected {
		t.Fatalf("peer event %+v", e)
	}
}

func TestDashboardServed(t *testing.T) {
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{Token: "tok"})
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes (the page must load without the token)", path, rec.Code, rec.Body.Len())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/static/nope.js", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("missing file: %d", rec.Code)
	}
}

// openStream starts GET /events from client on h and returns a function
// that ends it and waits for the handler to return.
func openStream(t *testing.T, h http.Handler, client string) (*httptest.ResponseRecorder, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/events", nil).WithContext(ctx)
	req.RemoteAddr = client
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	return rec, func() { cancel(); <-done }
}

// Event streams and requests in flight are bounded apart: past
// MaxEventStreams streams, or MaxClientRequests requests in flight from one
// client, the answer is a 503 with a JSON error, counted; closing streams
// frees their places; a client's streams do not take its requests' places.
func TestAPIBounds(t *testing.T) {
	n := startNode(t, Options{})
	h := Handler(n, n.Chain(), Options{})
	streams := func() float64 {
		rec := httptest.NewRecorder()
		n.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "gossipchain_event_subscribers "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		return -1
	}
	var stops []func()
	for i := range MaxEventStreams {
		_, stop := openStream(t, h, fmt.Sprintf("127.0.1.%d:1", i))
		stops = append(stops, stop)
	}
	waitFor(t, "every stream subscribed", func() bool { return streams() == MaxEventStreams })
	rec, stop := openStream(t, h, "127.0.2.1:1")
	stop()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"error"`) || n.Status().Drops["api_events_full"] != 1 {
		t.Fatalf("stream past the cap: %d %s, drops %v", rec.Code, rec.Body, n.Status().Drops)
	}
	for _, stop := range stops {
		stop()
	}
	waitFor(t, "every stream gone", func() bool { return streams() == 0 })

	get := func(client string) int {
		req := httptest.NewRequest("GET", "/status", nil)
		req.RemoteAddr = client
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	// One client holding every stream the node allows: its short requests
	// are answered.
	stops = nil
	for range MaxEventStreams {
		_, stop := openStream(t, h, "127.0.3.1:1")
		stops = append(stops, stop)
	}
	waitFor(t, "the client's streams subscribed", func() bool { return streams() == MaxEventStreams })
	if code := get("127.0.3.1:2"); code != http.StatusOK {
		t.Fatalf("a client holding %d streams: /status %d, want 200", MaxEventStreams, code)
	}
	for _, stop := range stops {
		stop()
	}

	// One client with MaxClientRequests requests in flight (posts whose
	// bodies have not arrived): its next request waits its turn, another
	// client's does not.
	g := h.(*gate)
	inFlight := func(client string) int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.inFlight[client]
	}
	var bodies []*io.PipeWriter
	var served sync.WaitGroup
	for range MaxClientRequests {
		pr, pw := io.Pipe()
		bodies = append(bodies, pw)
		req := httptest.NewRequest("POST", "/blocks", pr)
		req.RemoteAddr = "127.0.4.1:1"
		served.Go(func() { h.ServeHTTP(httptest.NewRecorder(), req) })
	}
	waitFor(t, "the client's requests in flight", func() bool { return inFlight("127.0.4.1") == MaxClientRequests })
	if code := get("127.0.4.1:2"); code != http.StatusServiceUnavailable || n.Status().Drops["api_client_busy"] != 1 {
		t.Fatalf("busy client: %d, drops %v", code, n.Status().Drops)
	}
	if code := get("127.0.4.2:1"); code != http.StatusOK {
		t.Fatalf("another client: %d", code)
	}
	for _, pw := range bodies {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	served.Wait()
	if code := get("127.0.4.1:2"); code != http.StatusOK {
		t.Fatalf("the client after its requests ended: %d", code)
	}
}

// Many event streams from one address (the case: 300 from
// 127.0.0.1, of which 32 were accepted and then /status got 503): the
// node accepts MaxEventStreams, refuses the rest with 503, and /status
// still answers the same address while they are open.
func TestManyStreamsOneClient(t *testing.T) {
	const count = 300
	n := startNode(t, Options{})
	srv := httptest.NewServer(Handler(n, n.Chain(), Options{}))
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var (
		mu     sync.Mutex
		codes  = map[int]int{}
		bodies []io.Closer
		wg     sync.WaitGroup
	)
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	for range count {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
			resp, err := client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusOK {
				bodies = append(bodies, resp.Body) // held open
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != MaxEventStreams || codes[http.StatusServiceUnavailable] != count-MaxEventStreams {
		t.Fatalf("%d streams from one address: answers %v, want %d of 200 and the rest 503", count, codes, MaxEventStreams)
	}
	for _, path := range []string{"/status", "/blocks?from=0", "/peers"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s with %d streams open: %v", path, MaxEventStreams, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s with %d streams open from the same address: %d, want 200", path, MaxEventStreams, resp.StatusCode)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

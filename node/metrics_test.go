package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gossipchain/ledger"
)

// scrape reads n's /metrics and parses the Prometheus text format.
func scrape(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value returns the value of the sample of family name whose labels
// include want, and whether there is one.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	nodes := line(t, 2)
	a, b := nodes[0], nodes[1]
	for _, line := range []string{"one", "two"} {
		if _, err := a.Append(context.Background(), line); err != nil {
			t.Fatal(err)
		}
	}
	waitSameHead(t, 10*time.Second, 2, a, b)
	attacker := newRawPublisher(t, b)
	good, _ := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32))).Sign(b.Chain().Head(), "x", time.Now())
	bad := *good
	bad.Data = "tampered"
	attacker.publish(t, mustJSON(t, bad))
	waitFor(t, 10*time.Second, "the tampered block counted", func() bool { return b.Drops()["invalid_hash"] == 1 })

	ma, mb := scrape(t, a), scrape(t, b)
	for _, c := range []struct {
		families map[string]*dto.MetricFamily
		name     string
		labels   map[string]string
		want     float64
	}{
		{ma, "gossipchain_chain_height", nil, 2},
		{mb, "gossipchain_chain_height", nil, 2},
		{ma, "gossipchain_blocks_added_total", map[string]string{"origin": "local"}, 2},
		{mb, "gossipchain_blocks_added_total", map[string]string{"origin": "gossip"}, 2},
		{mb, "gossipchain_blocks_dropped_total", map[string]string{"verdict": "reject", "reason": "invalid_hash"}, 1},
		{mb, "gossipchain_drops_total", map[string]string{"reason": "invalid_hash"}, 1},
		{mb, "gossipchain_block_propagation_delay_seconds", nil, 2},
		{mb, "gossipchain_peers", nil, 2},
		{mb, "gossipchain_orphans", nil, 0},
	} {
		got, ok := value(c.families, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// What libp2p measures itself is on the same registry.
	for _, name := range []string{"libp2p_rcmgr_connections", "gossipchain_gossipsub_messages_total", "go_goroutines"} {
		if _, ok := mb[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}

func TestEventsStream(t *testing.T) {
	n := startNodeWith(t, Config{APIAddr: "127.0.0.1:0"})
	resp, err := http.Get("http://" + n.APIAddr() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan Event, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e Event
				if json.Unmarshal([]byte(data), &e) == nil {
					events <- e
				}
			}
		}
	}()
	next := func(typ string) Event {
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
	post, err := http.Post("http://"+n.APIAddr()+"/blocks", "application/json", strings.NewReader(`{"data":"live"}`))
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
	other := startNode(t, "")
	if _, err := other.Connect(context.Background(), n.Addr()); err != nil {
		t.Fatal(err)
	}
	if e := next("peer"); e.Peer != other.ID().String() || !e.Connected {
		t.Fatalf("peer event %+v", e)
	}
}

func TestDashboardServed(t *testing.T) {
	n := startNodeWith(t, Config{APIToken: "tok"})
	h := n.Handler()
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

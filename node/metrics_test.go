package node

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	n.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
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

// metricsScene is what the metrics tests count: a line of two nodes, two
// lines typed on a and gossiped to b, and a tampered block published to b
// and rejected there.
func metricsScene(t *testing.T) (a, b *Node) {
	t.Helper()
	nodes := line(t, 2)
	a, b = nodes[0], nodes[1]
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
	return a, b
}

func TestMetrics(t *testing.T) {
	a, b := metricsScene(t)

	ma, mb := scrape(t, a), scrape(t, b)
	head, _ := strconv.ParseUint(b.Chain().Head().Hash[:12], 16, 64)
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
		// The same head on both: the same number, its hash's first 48 bits.
		{ma, "gossipchain_chain_head_prefix", nil, float64(head)},
		{mb, "gossipchain_chain_head_prefix", nil, float64(head)},
		{mb, "gossipchain_blocks_added_total", map[string]string{"origin": "local"}, 0}, // present before the first
		{ma, "gossipchain_budget_authors", map[string]string{"state": "known"}, 1},      // itself
		{mb, "gossipchain_budget_authors", map[string]string{"state": "new"}, 1},        // a, on b
		{mb, "gossipchain_gossipsub_rejected_total", map[string]string{"reason": "validation_failed"}, 1},
	} {
		got, ok := value(c.families, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// They are each other's mesh peers: a GRAFT went one way or both,
	// counted as sent on one end and received on the other.
	for _, dir := range []string{"sent", "received"} {
		ga, _ := value(ma, "gossipchain_gossipsub_control_total", map[string]string{"type": "graft", "direction": dir})
		gb, _ := value(mb, "gossipchain_gossipsub_control_total", map[string]string{"type": "graft", "direction": dir})
		if ga+gb < 1 {
			t.Errorf("grafts %s = %v on a, %v on b; want at least 1", dir, ga, gb)
		}
	}
	// What libp2p measures itself is on the same registry.
	for _, name := range []string{"libp2p_rcmgr_connections", "gossipchain_gossipsub_messages_total", "go_goroutines"} {
		if _, ok := mb[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}

package node

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	dto "github.com/prometheus/client_model/go"

	"gossipchain/protocol"
)

// grafanaDashboard is the dashboard operators import (README, "Watch it").
const grafanaDashboard = "../deploy/grafana/gossipchain.json"

// dashboardQueries returns every PromQL expression in a Grafana dashboard:
// its panels' targets, in rows or not, and its template variables'
// queries.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid, title or panels", path)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Type == "query" {
				exprs = append(exprs, q)
			}
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	return exprs
}

var (
	// quoted is a PromQL string: a label value, count_values' label.
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// metricName is a metric of gossipchain, libp2p, the Go runtime or
	// the process: every metric the dashboard may query has one of these
	// prefixes, so one that names another is caught as missing.
	metricName = regexp.MustCompile(`\b(?:gossipchain|libp2p|go|process)_[a-zA-Z0-9_]+`)
)

// queriedMetrics returns the metric names an expression reads.
func queriedMetrics(expr string) []string {
	return metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

// exported reports whether name is in families: a family's own name, or
// a histogram's or summary's _bucket, _sum or _count series.
func exported(families map[string]*dto.MetricFamily, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		f := families[base]
		if !ok || f == nil {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			return true
		case dto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
	}
	return false
}

func TestQueriedMetrics(t *testing.T) {
	got := queriedMetrics(`histogram_quantile(0.99, sum by (le) (rate(gossipchain_block_propagation_delay_seconds_bucket{job=~"$job",reason="libp2p_x"}[$__rate_interval]))) / on() group_left go_goroutines`)
	if want := []string{"gossipchain_block_propagation_delay_seconds_bucket", "go_goroutines"}; !slices.Equal(got, want) {
		t.Errorf("queriedMetrics = %q, want %q", got, want)
	}
}

// Every metric the Grafana dashboard queries is one a node exports, once
// it has done what each panel shows: peers, blocks typed, gossiped and
// synced, a bad block dropped, a peer's streams past the resource
// manager's limit.
func TestGrafanaDashboardMetrics(t *testing.T) {
	exprs := dashboardQueries(t, grafanaDashboard)
	_, b := metricsScene(t)

	// A peer opening more streams than the resource manager lets one peer
	// have: the ones past the limit are refused, and counted. Over TCP,
	// where opening a stream tells the other side at once (a QUIC stream
	// is news only with its first frame).
	flood, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableMetrics(), libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flood.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := flood.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var streams []network.Stream
	t.Cleanup(func() {
		for _, s := range streams {
			s.Reset()
		}
	})
	waitFor(t, 20*time.Second, "b's resource manager to refuse a stream", func() bool {
		for range 16 {
			s, err := flood.NewStream(network.WithAllowLimitedConn(ctx, "flood"), b.ID(), protocol.SyncID)
			if err != nil {
				break
			}
			streams = append(streams, s)
		}
		_, ok := scrape(t, b)["libp2p_rcmgr_blocked_resources"]
		return ok || len(streams) > 4096
	})

	families := scrape(t, b)
	seen := map[string]bool{}
	for _, e := range exprs {
		names := queriedMetrics(e)
		if len(names) == 0 {
			t.Errorf("query %q reads no gossipchain_, libp2p_, go_ or process_ metric", e)
		}
		for _, name := range names {
			if !seen[name] && !exported(families, name) {
				t.Errorf("the dashboard queries %s, which the node does not export (in %q)", name, e)
			}
			seen[name] = true
		}
	}
	t.Logf("%d queries, %d metrics, all exported", len(exprs), len(seen))
}

package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
)

// TestChaos runs the chaos command through the cluster script with a fixed
// seed, briefly: faults, then the checker's verdict.
func TestChaos(t *testing.T) {
	state := t.TempDir()
	cmd := exec.Command("bash", "scripts/cluster.sh", "chaos", "--seed", "7", "--duration", "15s", "--nodes", "4", "--dir", filepath.Join(state, "chaos"))
	cmd.Env = append(os.Environ(), "GOSSIPCHAIN_CLUSTER_DIR="+state)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chaos: ok: seed 7") {
		t.Fatalf("chaos: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	// The same seed, the same schedule.
	if a, b := chaosSchedule(7, 4, 15*time.Second), chaosSchedule(7, 4, 15*time.Second); fmt.Sprint(a) != fmt.Sprint(b) || len(a) == 0 {
		t.Fatalf("schedules of one seed differ or are empty: %v / %v", a, b)
	}
}

// The checker finds each kind of violation.
func TestChaosChecker(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	var good []ledger.Block
	parent := ledger.Genesis()
	good = append(good, *parent)
	for i := range 3 {
		b, err := s.Sign(parent, fmt.Sprintf("line %d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, *b)
		parent = b
	}
	serve := func(chain []ledger.Block) *chaosNode {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			from, _ := strconv.Atoi(r.URL.Query().Get("from"))
			json.NewEncoder(w).Encode(chain[min(from, len(chain)):])
		}))
		t.Cleanup(srv.Close)
		return &chaosNode{k: 1, api: strings.TrimPrefix(srv.URL, "http://")}
	}
	tampered := append([]ledger.Block{}, good...)
	tampered[2].Data = "line x"
	doubled := append(append([]ledger.Block{}, good...), good[3])
	doubled[4].Index = 4
	relinked, _ := s.Sign(&good[3], "line 0", time.Now()) // a line again
	twice := append(append([]ledger.Block{}, good...), *relinked)
	cases := []struct {
		name   string
		chains [][]ledger.Block
		acked  []string
		want   string
	}{
		{"ok", [][]ledger.Block{good, good}, []string{"line 0", "line 2"}, ""},
		{"lost", [][]ledger.Block{good}, []string{"line 9"}, `"line 9", acknowledged by node 1, is on the chain 0 times`},
		{"differ", [][]ledger.Block{good, good[:3]}, nil, "has 3 blocks"},
		{"tampered", [][]ledger.Block{tampered}, nil, "does not match"},
		{"unlinked", [][]ledger.Block{doubled}, nil, "does not link"},
		{"line twice", [][]ledger.Block{twice}, nil, `"line 0" is on the chain 2 times`},
	}
	for _, tc := range cases {
		r := &chaosRun{client: &http.Client{Timeout: 5 * time.Second}, acked: map[string]int{}, unack: map[string]bool{}}
		for i, c := range tc.chains {
			n := serve(c)
			n.k = i + 1
			r.nodes = append(r.nodes, n)
		}
		for _, l := range tc.acked {
			r.acked[l] = 1
		}
		got, _, _, err := r.check()
		if err != nil || (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: violation %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

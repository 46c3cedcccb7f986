package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needBrowser returns Debian's Chromium, skipping the test (failing it in
// CI) if it or playwright-core is missing.
func needBrowser(t *testing.T) string {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	missing := ""
	if _, err := os.Stat(chromium); err != nil {
		missing = "no Chromium at " + chromium + " (apt-get install chromium)"
	} else if _, err := os.Stat("scripts/browser/node_modules/playwright-core"); err != nil {
		missing = "no playwright-core (npm ci --prefix scripts/browser)"
	} else if _, err := exec.LookPath("node"); err != nil {
		missing = "no node"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser test can't run in CI: %s", missing)
		}
		t.Skipf("browser test skipped: %s", missing)
	}
	return chromium
}

// browserScript runs scripts/browser/SCRIPT with args in Chromium and
// returns what it printed.
func browserScript(t *testing.T, chromium, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("node", append([]string{"scripts/browser/" + script}, args...)...)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	return out
}

// TestDashboardInBrowser loads a node's dashboard in headless Chromium,
// adds a block by typing it into the page, and checks that the page (pushed
// by the event stream) and a second node's page both show it. It needs
// Debian's chromium and playwright-core (scripts/browser); without them it
// is skipped, except in CI, which installs both (.ci/run).
func TestDashboardInBrowser(t *testing.T) {
	chromium := needBrowser(t)
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	waitFor(t, 20*time.Second, "both nodes in the mesh", func() bool { return a.status(t).Mesh > 0 && b.status(t).Mesh > 0 })

	shot := filepath.Join(dir, "dashboard.png")
	out := browserScript(t, chromium, "dashboard.mjs", a.api+"/", shot, "typed in the browser", b.api+"/")
	var seen struct {
		ID     string   `json:"id"`
		Index  uint64   `json:"index"`
		SeenOn []string `json:"seenOn"`
		Agents []string `json:"agents"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	if seen.ID != a.status(t).ID || seen.Index != 1 || len(seen.SeenOn) != 1 {
		t.Fatalf("browser saw %+v", seen)
	}
	// The peers table names what b runs: the same build as a.
	if len(seen.Agents) != 1 || seen.Agents[0] != "gossipchain/"+version(t) {
		t.Fatalf("peers table shows agents %q, want [gossipchain/%s]", seen.Agents, version(t))
	}
	waitConverged(t, 10*time.Second, []string{"typed in the browser"}, a, b)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
	a.stop(t)
	b.stop(t)
}

// TestTraceInBrowser opens a block's trace on node a's dashboard, in a
// cluster of three (b and c peered with a), and checks that the page shows
// a and both its peers, each with the time it first had the block.
func TestTraceInBrowser(t *testing.T) {
	chromium := needBrowser(t)
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), a.addr)
	procs := []*proc{a, b, c}
	waitMeshed(t, procs...)
	fmt.Fprintln(b.stdin, "watch me spread")
	waitConverged(t, 20*time.Second, []string{"watch me spread"}, procs...)
	ids := []string{b.status(t).ID, c.status(t).ID}

	shot := filepath.Join(dir, "trace.png")
	out := browserScript(t, chromium, "trace.mjs", append([]string{a.api + "/", shot, "1"}, ids...)...)
	var seen struct {
		Rows []struct {
			Peer        string `json:"peer"`
			Self        bool   `json:"self"`
			FirstSeenMS int64  `json:"firstSeenMs"`
			Text        string `json:"text"`
		} `json:"rows"`
		Summary string `json:"summary"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	block := sameChains(t, procs...)[1]
	want := map[string]bool{a.status(t).ID: true, ids[0]: true, ids[1]: true}
	for _, r := range seen.Rows {
		if !want[r.Peer] {
			t.Errorf("trace row for %s, not a node of the cluster: %+v", r.Peer, r)
			continue
		}
		delete(want, r.Peer)
		if r.FirstSeenMS < block.Timestamp || r.FirstSeenMS > block.Timestamp+20_000 {
			t.Errorf("row %+v: first seen %d, block made at %d", r, r.FirstSeenMS, block.Timestamp)
		}
	}
	if len(want) > 0 {
		t.Fatalf("the page's trace lacks %v: rows %+v", want, seen.Rows)
	}
	t.Logf("trace on the page: %s", seen.Summary)
	for _, p := range procs {
		p.stop(t)
	}
}

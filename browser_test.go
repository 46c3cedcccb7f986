package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardInBrowser loads a node's dashboard in headless Chromium,
// adds a block by typing it into the page, and checks that the page (pushed
// by the event stream) and a second node's page both show it. It needs
// Debian's chromium and playwright-core (scripts/browser); without them it
// is skipped, except in CI, which installs both (.ci/run).
func TestDashboardInBrowser(t *testing.T) {
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
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	waitFor(t, 20*time.Second, "both nodes in the mesh", func() bool { return a.status(t).Mesh > 0 && b.status(t).Mesh > 0 })

	shot := filepath.Join(dir, "dashboard.png")
	cmd := exec.Command("node", "scripts/browser/dashboard.mjs", "http://"+a.api+"/", shot, "typed in the browser", "http://"+b.api+"/")
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	var seen struct {
		ID     string   `json:"id"`
		Index  uint64   `json:"index"`
		SeenOn []string `json:"seenOn"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	if seen.ID != a.status(t).ID || seen.Index != 1 || len(seen.SeenOn) != 1 {
		t.Fatalf("browser saw %+v", seen)
	}
	waitConverged(t, 10*time.Second, []string{"typed in the browser"}, a, b)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
	a.stop(t)
	b.stop(t)
}

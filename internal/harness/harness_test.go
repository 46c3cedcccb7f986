package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// A node started by the harness is reachable from its ready file alone:
// its API answers with the ID the file named, a line typed on its console
// is stored, and a restart on its data dir keeps its identity and chain.
func TestNodeLifecycle(t *testing.T) {
	var mu sync.Mutex
	var console []string
	data := filepath.Join(t.TempDir(), "n")
	n := StartTB(t, Config{Data: data, Stdin: true, Stdout: LineFunc(func(l string) {
		mu.Lock()
		console = append(console, l)
		mu.Unlock()
	})})
	if !strings.HasPrefix(n.Addr(), "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(n.Addr(), "/p2p/"+n.ID()) || n.Port() == 0 {
		t.Fatalf("address %q, port %d, id %s", n.Addr(), n.Port(), n.ID())
	}
	if !strings.HasPrefix(n.API(), "http://127.0.0.1:") || n.ReadyAfter() <= 0 {
		t.Fatalf("api %q, ready after %v", n.API(), n.ReadyAfter())
	}
	st, err := n.Status()
	if err != nil || st.ID != n.ID() {
		t.Fatalf("status %+v, %v; want id %s", st, err, n.ID())
	}
	fmt.Fprintln(n.Stdin(), "typed")
	waitHeight(t, n, 1) // the console's line first: stdin and the API are two paths
	if _, err := n.Append("posted"); err != nil {
		t.Fatal(err)
	}
	waitHeight(t, n, 2)
	chain, err := n.Chain()
	if err != nil || len(chain) != 3 || chain[1].Data != "typed" || chain[2].Data != "posted" {
		t.Fatalf("chain %+v, %v", chain, err)
	}
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil { // resumes it first
		t.Fatalf("stop: %v; log:\n%s", err, n.StderrTail())
	}
	if n.ExitCode() != 0 {
		t.Fatalf("exit code %d", n.ExitCode())
	}
	mu.Lock()
	joined := strings.Join(console, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "> #1 ") {
		t.Fatalf("console did not acknowledge the typed line:\n%s", joined)
	}

	again := StartTB(t, Config{Data: data, Port: n.Port()})
	if again.ID() != n.ID() || again.Port() != n.Port() {
		t.Fatalf("restart: id %s port %d; want %s %d", again.ID(), again.Port(), n.ID(), n.Port())
	}
	waitHeight(t, again, 2)
	again.Kill()
	if again.ExitCode() != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1", again.ExitCode())
	}
}

// The ready file of a node without an API: an empty api, the addresses
// a list, one line of JSON.
func TestReadyFileWithoutAPI(t *testing.T) {
	n := StartTB(t, Config{NoAPI: true})
	b, err := os.ReadFile(n.Data() + ".ready")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ID    string   `json:"id"`
		Addrs []string `json:"addrs"`
		API   *string  `json:"api"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID != n.ID() || !slices.Equal(r.Addrs, n.Addrs()) || r.API == nil || *r.API != "" ||
		strings.Count(string(b), "\n") != 1 || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("ready file %q (%v), want one line of JSON: id %s, addrs %v, api \"\"", b, err, n.ID(), n.Addrs())
	}
}

// A node that cannot start is an error at once, with the end of its log.
func TestNodeExitsBeforeReady(t *testing.T) {
	start := time.Now()
	_, err := Start(Config{Bin: Binary(t), Data: filepath.Join(t.TempDir(), "n"), Args: []string{"--finality", "0"}})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "--finality 0 must be at least 1") {
		t.Fatalf("error %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v to notice the exit", time.Since(start))
	}
}

func waitHeight(t *testing.T, n *Node, h uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := n.Status()
		if err == nil && st.Height == h {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("height %d, %v; want %d", st.Height, err, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLineFunc(t *testing.T) {
	var got []string
	w := LineFunc(func(l string) { got = append(got, l) })
	for _, s := range []string{"a", "b\nc", "\r\n", "d\n", "partial"} {
		w.Write([]byte(s))
	}
	if fmt.Sprint(got) != "[ab c d]" {
		t.Fatalf("lines %q", got)
	}
}

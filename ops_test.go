package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gossipchain/internal/harness"
	"gossipchain/node"
)

// What an operator uses: the version, configuration from the environment,
// the log's format and level, the metrics port.

// version returns the version the built binary reports: the first line of
// gossipchain version, without "gossipchain ".
func version(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), "version").Output()
	if err != nil {
		t.Fatalf("gossipchain version: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(first, "gossipchain ")
	if !ok {
		t.Fatalf("gossipchain version: first line %q", first)
	}
	return v
}

// gossipchain version and --version print the build; a node tells its
// peers gossipchain/<that version>, and GET /peers lists it.
func TestVersion(t *testing.T) {
	bin := harness.Binary(t)
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}, {"--version", "--port", "99999"}} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("%v: %v, stderr %q", args, err, stderr.String())
		}
		outs = append(outs, stdout.String())
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Errorf("gossipchain version and --version differ:\n%s\n%s\n%s", outs[0], outs[1], outs[2])
	}
	lines := strings.Split(strings.TrimSpace(outs[0]), "\n")
	if len(lines) != 3 ||
		!regexp.MustCompile(`^gossipchain (v\d+\.\d+\.\d+\S*|devel(-[0-9a-f]{12})?(-dirty)?)$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^commit ([0-9a-f]{40} of \S+, (clean|modified)|unknown \(built without VCS information\))$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], "go1.") {
		t.Errorf("gossipchain version:\n%s", outs[0])
	}

	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	want := "gossipchain/" + version(t)
	var peers []node.PeerInfo
	waitFor(t, 10*time.Second, "a to list b's agent", func() bool {
		a.get(t, "/peers", &peers)
		return len(peers) == 1 && peers[0].ID == b.status(t).ID && peers[0].Agent == want
	}, func() string { return fmt.Sprintf("peers %+v", peers) })
}

// rawNode is a node process started with exactly the arguments and
// environment a test gives (the harness adds flags of its own), stopped
// when the test ends.
type rawNode struct {
	cmd    *exec.Cmd
	ready  harness.Ready
	stderr *syncBuffer
	done   chan struct{}
}

// syncBuffer is a bytes.Buffer that a process writes and a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRaw starts the binary with args and env (added to this process's)
// and waits for the ready file at readyFile, which args or env must name.
func startRaw(t *testing.T, readyFile string, env []string, args ...string) *rawNode {
	t.Helper()
	n := &rawNode{cmd: exec.Command(harness.Binary(t), args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	n.cmd.Env = append(os.Environ(), env...)
	n.cmd.Stderr = n.stderr
	stdin, err := n.cmd.StdinPipe() // held open: the node's console
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
		stdin.Close()
	})
	waitFor(t, 30*time.Second, "the ready file "+readyFile, func() bool {
		select {
		case <-n.done:
			t.Fatalf("node exited before it was ready: %s", n.stderr)
		default:
		}
		b, err := os.ReadFile(readyFile)
		return err == nil && json.Unmarshal(b, &n.ready) == nil
	})
	return n
}

// stop sends SIGTERM and waits for exit status 0.
func (n *rawNode) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		t.Fatal("node did not stop within 15 s of SIGTERM")
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, n.stderr)
	}
}

// A node configured by its environment alone, as a container or a service
// unit configures it: every setting from GOSSIPCHAIN_<FLAG>, its log as
// JSON (libp2p's lines too); flags win over the environment.
func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	ready := filepath.Join(dir, "b.ready")
	b := startRaw(t, ready, []string{
		"GOSSIPCHAIN_PORT=0",
		"GOSSIPCHAIN_DATA=" + filepath.Join(dir, "b"),
		"GOSSIPCHAIN_API=127.0.0.1:0",
		"GOSSIPCHAIN_API_TOKEN=s3cret",
		"GOSSIPCHAIN_READY_FILE=" + ready,
		"GOSSIPCHAIN_PEER=" + a.addr,
		"GOSSIPCHAIN_LOG=debug",
		"GOSSIPCHAIN_LOG_FORMAT=json",
		// Given on the command line too, where it is valid: the flag wins.
		"GOSSIPCHAIN_FINALITY=0",
	}, "--finality", "10")
	if b.ready.API == "" {
		t.Fatalf("no API from GOSSIPCHAIN_API: ready %+v", b.ready)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(token string) (int, node.Status) {
		req, _ := http.NewRequest("GET", b.ready.API+"/status", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s node.Status
		json.NewDecoder(resp.Body).Decode(&s)
		return resp.StatusCode, s
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /status without the token from GOSSIPCHAIN_API_TOKEN: %d, want 401", code)
	}
	waitFor(t, 10*time.Second, "b connected to a (GOSSIPCHAIN_PEER)", func() bool {
		code, s := get("s3cret")
		return code == http.StatusOK && s.Peers == 1
	})
	if _, err := os.Stat(filepath.Join(dir, "b", "chain.db")); err != nil {
		t.Errorf("no chain in GOSSIPCHAIN_DATA: %v", err)
	}
	b.stop(t)

	lines := strings.Split(strings.TrimSpace(b.stderr.String()), "\n")
	started, libp2p := false, false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("GOSSIPCHAIN_LOG_FORMAT=json: a log line is not JSON: %q", l)
		}
		started = started || rec["msg"] == "node started"
		_, isLibp2p := rec["logger"] // libp2p's loggers name themselves
		libp2p = libp2p || isLibp2p
	}
	if !started || !libp2p {
		t.Errorf("JSON log of %d lines: node started %v, libp2p's lines %v", len(lines), started, libp2p)
	}
}

// A bad value in the environment is one line on stderr, naming the
// variable, and exit status 1.
func TestBadEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"GOSSIPCHAIN_PORT=abc", nil, `environment GOSSIPCHAIN_PORT="abc": not a value for --port`},
		{"GOSSIPCHAIN_PORT=70000", nil, "GOSSIPCHAIN_PORT 70000 is out of range"},
		{"GOSSIPCHAIN_FINALITY=0", nil, "GOSSIPCHAIN_FINALITY 0 must be at least 1"},
		{"GOSSIPCHAIN_PEER=/ip4/127.0.0.1/tcp/1", nil, "GOSSIPCHAIN_PEER"},
		{"GOSSIPCHAIN_LISTEN=localhost", nil, `GOSSIPCHAIN_LISTEN "localhost" is not an IP address`},
		{"GOSSIPCHAIN_LOG=loud", nil, `GOSSIPCHAIN_LOG "loud": want debug, info, warn or error`},
		{"GOSSIPCHAIN_LOG_FORMAT=xml", nil, `GOSSIPCHAIN_LOG_FORMAT "xml": want text or json`},
		{"GOSSIPCHAIN_PORT=-1", []string{"id"}, "GOSSIPCHAIN_PORT -1 is out of range"},
		{"GOSSIPCHAIN_METRICS=:9001", nil, `GOSSIPCHAIN_METRICS: metrics address ":9001" names no host`},
	} {
		cmd := exec.Command(harness.Binary(t), append(tc.args, "--data", filepath.Join(dir, "d"))...)
		cmd.Env = append(os.Environ(), tc.env)
		var stderr bytes.Buffer
		cmd.Stderr, cmd.Stdin = &stderr, strings.NewReader("")
		err := cmd.Run()
		msg := strings.TrimSpace(stderr.String())
		if err == nil || cmd.ProcessState.ExitCode() != 1 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %v: %v, stderr %q; want exit 1 and one line with %q", tc.env, tc.args, err, msg, tc.want)
		}
	}
}

// --metrics serves /metrics alone, with no token, while the API wants
// one; the ready file says where.
func TestMetricsPortProcess(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	n := startRaw(t, ready, nil, "--port", "0", "--data", filepath.Join(dir, "d"), "--ready-file", ready,
		"--api", "127.0.0.1:0", "--api-token", "s3cret", "--metrics", "127.0.0.1:0")
	if !strings.HasPrefix(n.ready.Metrics, "http://127.0.0.1:") || !strings.HasSuffix(n.ready.Metrics, "/metrics") {
		t.Fatalf("ready file: metrics %q", n.ready.Metrics)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(n.ready.Metrics); code != http.StatusOK || !strings.Contains(body, "gossipchain_build_info{") {
		t.Errorf("GET %s with no token: %d\n%.300s", n.ready.Metrics, code, body)
	}
	if code, _ := get(n.ready.API + "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("the API's own /metrics with no token: %d, want 401", code)
	}
	n.stop(t)
}

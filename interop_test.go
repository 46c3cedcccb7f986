package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// jsPeer is the interop peer (scripts/interop/peer.mjs, a second
// implementation of docs/PROTOCOL.md on js-libp2p) as a process: commands
// go to its stdin, its events are collected from its stdout.
type jsPeer struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr strings.Builder
	mu     sync.Mutex // guards events
	events []jsEvent
	done   chan struct{}
}

type jsEvent struct {
	Event   string `json:"event"`
	ID      string `json:"id"`
	Index   uint64 `json:"index"`
	Hash    string `json:"hash"`
	Data    string `json:"data"`
	Author  string `json:"author"`
	Via     string `json:"via"`
	Height  uint64 `json:"height"`
	Head    string `json:"head"`
	Checked int    `json:"checked"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	MsgID   string `json:"msgId"` // hex of the bytes of a message's ID
}

func startJSPeer(t *testing.T, addrs ...string) *jsPeer {
	t.Helper()
	j := &jsPeer{cmd: exec.Command("node", append([]string{"scripts/interop/peer.mjs"}, addrs...)...), done: make(chan struct{})}
	j.cmd.Stderr = &j.stderr
	var err error
	if j.stdin, err = j.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := j.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e jsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = jsEvent{Event: "error", Message: "unreadable output: " + sc.Text()}
			}
			j.mu.Lock()
			j.events = append(j.events, e)
			j.mu.Unlock()
		}
		j.cmd.Wait()
		close(j.done)
	}()
	t.Cleanup(func() {
		j.stdin.Close()
		select {
		case <-j.done:
		case <-time.After(10 * time.Second):
			j.cmd.Process.Kill()
			<-j.done
		}
	})
	return j
}

// send writes one command.
func (j *jsPeer) send(t *testing.T, cmd map[string]string) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(j.stdin, "%s\n", b); err != nil {
		t.Fatalf("interop peer: %v\n%s", err, j.stderr.String())
	}
}

// find returns the events of a kind so far.
func (j *jsPeer) find(kind string) []jsEvent {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []jsEvent
	for _, e := range j.events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

// wait waits for an event of kind that ok accepts, failing on an error
// event or the peer's exit.
func (j *jsPeer) wait(t *testing.T, what, kind string, ok func(jsEvent) bool) jsEvent {
	t.Helper()
	var found jsEvent
	waitFor(t, 30*time.Second, what, func() bool {
		if errs := j.find("error"); len(errs) > 0 {
			t.Fatalf("interop peer: %s\n%s", errs[0].Message, j.stderr.String())
		}
		for _, e := range j.find(kind) {
			if ok(e) {
				found = e
				return true
			}
		}
		select {
		case <-j.done:
			t.Fatalf("interop peer exited: %s", j.stderr.String())
		default:
		}
		return false
	})
	return found
}

// TestJSInterop runs the second implementation against three gossipchain
// processes (a <- b <- c, the JS peer dialling c only): it receives and
// checks every block typed on a (hash, link, signature), fetches and checks
// the whole chain over the sync protocol, authors blocks that every node
// stores, and a tampered copy it sends is rejected. It needs Node.js and
// the packages of scripts/interop; without them it is skipped, except in
// CI, which installs them (.ci/run).
func TestJSInterop(t *testing.T) {
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "no node (Node.js 20 or later)"
	} else if _, err := os.Stat("scripts/interop/node_modules/@libp2p/gossipsub"); err != nil {
		missing = "no js-libp2p packages (npm ci --prefix scripts/interop)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop test can't run in CI: %s", missing)
		}
		t.Skipf("interop test skipped: %s", missing)
	}
	dir := t.TempDir()
	a := startProc(t, filepath.Join(dir, "a"))
	b := startProc(t, filepath.Join(dir, "b"), a.addr)
	c := startProc(t, filepath.Join(dir, "c"), b.addr)
	procs := []*proc{a, b, c}
	var lines []string
	typeOn := func(p *proc, line string) {
		fmt.Fprintln(p.stdin, line)
		lines = append(lines, line)
	}
	for i := range 3 {
		typeOn(a, fmt.Sprintf("before the JS peer %d", i))
	}
	waitConverged(t, 30*time.Second, lines, procs...)

	js := startJSPeer(t, c.addr)
	ready := js.wait(t, "the JS peer in c's mesh", "ready", func(jsEvent) bool { return true })
	t.Logf("JS peer %s ready", ready.ID)

	// Blocks typed on a reach it by gossip through b and c, each checked
	// and linked by its validator before it is accepted.
	for i := range 3 {
		line := fmt.Sprintf("gossiped to the JS peer %d", i)
		typeOn(a, line)
		js.wait(t, "the JS peer to accept "+line, "block", func(e jsEvent) bool { return e.Data == line && e.Via == "gossip" })
	}
	// The whole chain by sync, every block checked.
	js.send(t, map[string]string{"cmd": "sync"})
	head := c.status(t)
	synced := js.wait(t, "the JS peer's sync", "synced", func(jsEvent) bool { return true })
	if synced.Height != head.Height || synced.Head != head.Head || synced.Checked != int(head.Height) {
		t.Fatalf("JS sync: %+v; c's head is %d %s", synced, head.Height, head.Head)
	}

	// Blocks it authors: every node stores them, under its peer ID.
	for i := range 3 {
		line := fmt.Sprintf("typed on the JS peer %d", i)
		js.send(t, map[string]string{"cmd": "append", "data": line})
		js.wait(t, "the JS peer to publish "+line, "appended", func(e jsEvent) bool { return true })
		lines = append(lines, line)
		waitConverged(t, 30*time.Second, lines, procs...)
	}
	chain := sameChains(t, procs...)
	for _, blk := range chain[len(chain)-3:] {
		if blk.Author != ready.ID {
			t.Fatalf("block %d %q: author %s, want the JS peer %s", blk.Index, blk.Data, blk.Author, ready.ID)
		}
	}
	// Both implementations give a block one message ID, byte for byte:
	// IHAVE, IWANT and IDONTWANT name blocks by it.
	byHash := map[string]ledger.Block{}
	for _, blk := range chain {
		byHash[blk.Hash] = blk
	}
	named := js.find("named")
	if len(named) == 0 {
		t.Fatal("the JS peer named no gossip message")
	}
	for _, e := range named {
		blk, ok := byHash[e.Hash]
		if !ok {
			continue
		}
		want, _ := protocol.BlockID(&blk)
		if e.MsgID != hex.EncodeToString([]byte(want)) {
			t.Fatalf("block %d: the JS peer's message ID %s, gossipchain's %x", blk.Index, e.MsgID, want)
		}
	}

	// A tampered copy (new data, old hash and signature) is rejected by
	// the node it reaches and stored nowhere.
	js.send(t, map[string]string{"cmd": "tamper", "data": "tampered by the JS peer"})
	js.wait(t, "the JS peer to publish the tampered block", "tampered", func(jsEvent) bool { return true })
	waitFor(t, 20*time.Second, "c to reject the tampered block", func() bool { return c.status(t).Drops["invalid_hash"] > 0 })
	waitConverged(t, 30*time.Second, lines, procs...)
	if rejected := js.find("rejected"); len(rejected) > 0 {
		t.Fatalf("the JS peer rejected a block from gossipchain: %+v", rejected[0])
	}
	js.send(t, map[string]string{"cmd": "quit"})
}

package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Ready is the JSON a node writes to its --ready-file once it listens
// (and its API, if any, serves):
//
//	{"id":"12D3KooW…","addrs":["/ip4/127.0.0.1/tcp/40123/p2p/12D3KooW…","/ip4/127.0.0.1/udp/40124/quic-v1/p2p/12D3KooW…"],"api":"http://127.0.0.1:40567"}
//
// The file is written atomically and left in place at exit; Start
// deletes it before starting a node.
type Ready struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api"` // "" without --api
	// Metrics is the metrics port's URL, "http://HOST:PORT/metrics", ""
	// without --metrics.
	Metrics string `json:"metrics"`
}

// WriteReady writes r to path as a node does (a temporary file, then a
// rename), for a test binary that stands in for a node.
func WriteReady(path string, r Ready) error {
	if r.Addrs == nil {
		r.Addrs = []string{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// waitReady polls for the ready file until it is there, the process
// exits, or the deadline passes.
func (n *Node) waitReady() error {
	deadline := n.start.Add(n.cfg.ReadyTimeout)
	for {
		ok, err := n.readReady()
		if ok || err != nil {
			return err
		}
		select {
		case <-n.done:
			return fmt.Errorf("node %s exited before it was ready (%v); its log ends:\n%s", n.cfg.Data, n.waited, n.tail)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not ready within %v (no %s); its log ends:\n%s", n.cfg.Data, n.cfg.ReadyTimeout, n.cfg.ReadyFile, n.tail)
		}
		// Often in the first second, when nodes start: what ReadyAfter
		// reports comes from the file's time, not from these polls.
		wait := 2 * time.Millisecond
		if time.Since(n.start) > time.Second {
			wait = 25 * time.Millisecond
		}
		time.Sleep(wait)
	}
}

// readReady reads the ready file if it is there.
func (n *Node) readReady() (bool, error) {
	b, err := os.ReadFile(n.cfg.ReadyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ready file: %w", err)
	}
	if err := json.Unmarshal(b, &n.ready); err != nil {
		return false, fmt.Errorf("ready file %s: %w", n.cfg.ReadyFile, err)
	}
	if fi, err := os.Stat(n.cfg.ReadyFile); err == nil {
		n.after = fi.ModTime().Sub(n.start)
	}
	return true, nil
}

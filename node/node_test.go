package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bareHost is a libp2p host on a free loopback port, with nothing of
// gossipchain on it, closed when the test ends.
func bareHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func startNode(t *testing.T, dir string, peers ...*Node) *Node {
	t.Helper()
	return startNodeWith(t, Config{DataDir: dir}, peers...)
}

// startNodeWith starts a node from cfg (a temporary data dir if it has
// none) peered with peers, closed when the test ends.
func startNodeWith(t *testing.T, cfg Config, peers ...*Node) *Node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, peer.AddrInfo{ID: p.ID(), Addrs: p.host.Addrs()})
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// collectEvents follows n's events of type typ from now on, until the test
// ends; the returned func reads those seen so far.
func collectEvents(t *testing.T, n *Node, typ string) func() []Event {
	t.Helper()
	f := n.Follow()
	var mu sync.Mutex
	var seen []Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for events := f.Next(); events != nil; events = f.Next() {
			for _, e := range events {
				if e.Type == typ {
					mu.Lock()
					seen = append(seen, e)
					mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { f.Stop(); <-done })
	return func() []Event {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// waitMesh waits until every node has at least one mesh peer for blocks.
func waitMesh(t *testing.T, nodes ...*Node) {
	t.Helper()
	waitFor(t, 20*time.Second, "every node in the blocks mesh", func() bool {
		for _, n := range nodes {
			if n.MeshPeers() == 0 {
				return false
			}
		}
		return true
	})
}

func waitSameHead(t *testing.T, timeout time.Duration, height uint64, nodes ...*Node) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("all nodes at one head of height %d", height), func() bool {
		h := nodes[0].Chain().Head()
		for _, n := range nodes {
			if got := n.Chain().Head(); got.Hash != h.Hash || got.Index != height {
				return false
			}
		}
		return true
	})
}

// waitConverged waits until every node has the same head and its main chain
// holds exactly the given lines, each once, in any order.
func waitConverged(t *testing.T, timeout time.Duration, lines []string, nodes ...*Node) {
	t.Helper()
	var problem string
	deadline := time.Now().Add(timeout)
	for {
		problem = converged(nodes, lines)
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after %v: %s", timeout, problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converged says why nodes have not converged on one chain holding lines
// exactly once, or "" if they have.
func converged(nodes []*Node, lines []string) string {
	head := nodes[0].Chain().Head()
	for i, n := range nodes {
		if h := n.Chain().Head(); h.Hash != head.Hash {
			return fmt.Sprintf("node 0 at #%d %s, node %d at #%d %s", head.Index, head.Short(), i, h.Index, h.Short())
		}
	}
	chain, err := nodes[0].Chain().Range(1, int(head.Index))
	if err != nil {
		return err.Error()
	}
	want := map[string]int{}
	for _, l := range lines {
		want[l]++
	}
	for _, b := range chain {
		want[b.Data]--
	}
	for l, c := range want {
		if c != 0 {
			return fmt.Sprintf("line %q is on the main chain %d times, want 1 (head #%d)", l, 1-c, head.Index)
		}
	}
	return ""
}

// line starts count nodes, each peered with the one before, so blocks must be
// relayed to get from one end to the other.
func line(t *testing.T, count int) []*Node {
	nodes := []*Node{startNode(t, "")}
	for i := 1; i < count; i++ {
		nodes = append(nodes, startNode(t, "", nodes[i-1]))
	}
	waitMesh(t, nodes...)
	return nodes
}

// rawPublisher is a libp2p host that speaks GossipSub on the blocks topic
// but validates nothing: it publishes whatever bytes a test gives it.
type rawPublisher struct {
	host  host.Host
	topic *pubsub.Topic
}

func newRawPublisher(t *testing.T, target *Node) *rawPublisher {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(), pubsub.WithFloodPublish(true),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return protocol.MessageID(m.Data) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(protocol.TopicBlocks)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "attacker subscribed with its target", func() bool {
		return len(topic.ListPeers()) > 0 && slices.Contains(target.topic.ListPeers(), h.ID())
	})
	return &rawPublisher{host: h, topic: topic}
}

func (r *rawPublisher) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := r.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

func TestBadBlocksRejectedNotRelayed(t *testing.T) {
	nodes := line(t, 2) // b <- c
	b, c := nodes[0], nodes[1]
	attacker := newRawPublisher(t, b)

	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	s := ledger.NewSigner(key)
	good, err := s.Sign(b.Chain().Head(), "honest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tampered := *good
	tampered.Data = "tampered"
	forged := *good // claims to be by b, signed by someone else
	forged.Author = b.ID().String()
	forged.Hash, _ = forged.ComputeHash()
	oversize := []byte(`{"data":"` + strings.Repeat("x", protocol.MaxBlockMessageBytes) + `"}`)

	for _, msg := range [][]byte{mustJSON(t, tampered), mustJSON(t, forged), []byte("not json"), []byte(`{"index":1,"extra":true}`), oversize} {
		attacker.publish(t, msg)
	}
	// Each REJECT costs the sender -100 x (invalid messages)^2: by the third
	// it is below the graylist threshold and the rest go unread.
	waitFor(t, 10*time.Second, "b to count the bad messages and graylist the sender", func() bool {
		d := b.Drops()
		score, ok := b.PeerScore(attacker.host.ID())
		return d["invalid_hash"] == 1 && d["bad_signature"] == 1 && d["malformed"] >= 1 && ok && score < GraylistThreshold
	})
	// An honest block from b: once c has it, anything b relayed before it
	// (on the same stream) has arrived too.
	if _, err := b.Append(context.Background(), "honest"); err != nil {
		t.Fatal(err)
	}
	waitSameHead(t, 10*time.Second, 1, b, c)
	if d := c.Drops(); len(d) != 0 {
		t.Errorf("c saw dropped messages %v: b relayed something it should have rejected", d)
	}
	for _, bad := range []ledger.Block{tampered, forged} {
		for _, n := range nodes {
			if n.Chain().Has(bad.Hash) {
				t.Errorf("node %s stored a bad block", n.ID())
			}
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidatorPanicIsReject(t *testing.T) {
	n := startNode(t, "")
	b, err := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32))).Sign(ledger.Genesis(), "x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	orig := n.chain
	n.chain = nil // any use of the chain now panics
	defer func() { n.chain = orig }()
	msg := &pubsub.Message{Message: &pb.Message{Data: mustJSON(t, b)}}
	if got := n.validateBlock(context.Background(), "someone", msg); got != pubsub.ValidationReject {
		t.Fatalf("verdict %v, want reject", got)
	}
	if n.Drops()["panic"] != 1 {
		t.Fatalf("drops %v, want one panic", n.Drops())
	}
}

func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	id := n.ID()
	if _, err := n.Append(context.Background(), "kept"); err != nil {
		t.Fatal(err)
	}
	head := n.Chain().Head()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, identityFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity key mode %v, want 0600", fi.Mode().Perm())
	}
	n2 := startNode(t, dir)
	if n2.ID() != id {
		t.Fatalf("peer ID changed across restart: %s -> %s", id, n2.ID())
	}
	if n2.Chain().Head().Hash != head.Hash {
		t.Fatalf("head changed across restart")
	}
	if _, err := New(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on the same data dir: %v, want in use", err)
	}
}

func TestAuthorIDMatchesLibp2p(t *testing.T) {
	for i := 0; i < 20; i++ {
		priv, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := peer.IDFromPublicKey(pub)
		raw, _ := priv.Raw()
		if got := ledger.NewSigner(ed25519.PrivateKey(raw)).ID(); got != want.String() {
			t.Fatalf("ledger author %s, libp2p peer ID %s", got, want)
		}
	}
}

// A closed node refuses work at once: no append blocks on a store that is
// gone.
func TestClosedNodeRefusesWork(t *testing.T) {
	n := startNode(t, "")
	if _, err := n.Append(context.Background(), "before"); err != nil {
		t.Fatal(err)
	}
	n.Close()
	done := make(chan error, 2)
	go func() {
		_, err := n.Append(context.Background(), "after")
		done <- err
	}()
	go func() {
		_, err := n.Chain().Append(n.signer, "after, straight to the chain")
		done <- err
	}()
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, ledger.ErrClosed) {
				t.Errorf("append after Close: %v, want ledger.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("append after Close blocked")
		}
	}
}

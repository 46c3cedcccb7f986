package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/pnet"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

func testPSK(t *testing.T) pnet.PSK {
	t.Helper()
	raw, err := NewPSK()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	psk, err := LoadPSK(path)
	if err != nil {
		t.Fatal(err)
	}
	return psk
}

func TestPrivateNetwork(t *testing.T) {
	psk := testPSK(t)
	a := startNodeWith(t, Config{PSK: psk})
	b := startNodeWith(t, Config{PSK: psk}, a)
	waitMesh(t, a, b)
	if _, err := a.Append(context.Background(), "members only"); err != nil {
		t.Fatal(err)
	}
	waitSameHead(t, 10*time.Second, 1, a, b)

	for name, cfg := range map[string]Config{"no key": {}, "another key": {PSK: testPSK(t)}} {
		outsider := startNodeWith(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := outsider.Connect(ctx, a.Addr())
		cancel()
		if err == nil {
			t.Errorf("%s: connected to a private network", name)
		}
		if outsider.Chain().Height() != 0 || len(a.Peers()) != 1 {
			t.Errorf("%s: outsider height %d, a has %d peers", name, outsider.Chain().Height(), len(a.Peers()))
		}
	}
}

func TestAuthorsList(t *testing.T) {
	// a and b may write; c relays and reads; an attacker with its own valid
	// key is not listed.
	dirA, dirB := t.TempDir(), t.TempDir()
	var authors []string
	for _, dir := range []string{dirA, dirB} {
		id, err := IdentityID(dir) // creates the key, as `gossipchain id` does
		if err != nil {
			t.Fatal(err)
		}
		authors = append(authors, id.String())
	}
	a := startNodeWith(t, Config{DataDir: dirA, Authors: authors})
	b := startNodeWith(t, Config{DataDir: dirB, Authors: authors}, a)
	c := startNodeWith(t, Config{Authors: authors}, a)
	waitMesh(t, a, b, c)
	for _, n := range []*Node{a, b} {
		if _, err := n.Append(context.Background(), "listed author"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Append(context.Background(), "unlisted"); ledger.Code(err) != ledger.ErrUnknownAuthor {
		t.Fatalf("unlisted node appended: %v", err)
	}
	attacker := newRawPublisher(t, a)
	stranger := ledger.NewSigner(ed25519.NewKeyFromSeed([]byte(strings.Repeat("z", 32))))
	bad, err := stranger.Sign(a.Chain().Head(), "not listed", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	attacker.publish(t, mustJSON(t, bad))
	waitFor(t, 10*time.Second, "the stranger's block rejected", func() bool { return a.Drops()["unknown_author"] == 1 })
	if _, err := a.Append(context.Background(), "after"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, []string{"listed author", "listed author", "after"}, a, b, c)
	for _, n := range []*Node{a, b, c} {
		if n.Chain().Has(bad.Hash) {
			t.Errorf("node %s stored the unlisted author's block", n.ID())
		}
	}
}

func TestHostileFlood(t *testing.T) {
	// Honest a, b, c exchange blocks while an attacker connected to a
	// floods it: garbage, tampered and forged blocks, oversized messages,
	// thousands of orphans signed with its own key.
	a := startNode(t, "")
	b := startNode(t, "", a)
	c := startNode(t, "", b)
	waitMesh(t, a, b, c)
	attacker := newRawPublisher(t, a)
	victim := ledger.NewSigner(ed25519.NewKeyFromSeed([]byte(strings.Repeat("v", 32))))
	own := ledger.NewSigner(ed25519.NewKeyFromSeed([]byte(strings.Repeat("o", 32))))
	genuine, _ := victim.Sign(a.Chain().Head(), "genuine", time.Now())
	tampered := *genuine
	tampered.Data = "tampered"
	forged := *genuine
	forged.Author = a.ID().String()
	forged.Hash, _ = forged.ComputeHash()

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// The sender runs beside the test: it must not call t.Fatal. A block
	// always encodes.
	encode := func(v any) []byte { b, _ := json.Marshal(v); return b }
	done := make(chan int)
	go func() {
		sent := 0
		defer func() { done <- sent }()
		for i := 0; i < 5000; i++ {
			var msg []byte
			switch i % 5 {
			case 0:
				msg = []byte(fmt.Sprintf("garbage %d", i))
			case 1:
				t2 := tampered
				t2.Data = fmt.Sprintf("tampered %d", i)
				msg = encode(t2)
			case 2:
				msg = encode(forged)
			case 3:
				msg = []byte(`{"data":"` + strings.Repeat("x", protocol.MaxBlockMessageBytes+i) + `"}`)
			case 4: // validly signed, parent unknown: held, never relayed
				parent := &ledger.Block{Index: uint64(100 + i), Hash: fmt.Sprintf("%064x", i)}
				o, _ := own.Sign(parent, "orphan", time.Now())
				msg = encode(o)
			}
			if attacker.topic.Publish(context.Background(), msg) != nil {
				return
			}
			sent++
		}
	}()
	var lines []string
	for i := 0; i < 30; i++ {
		line := fmt.Sprintf("during the attack %d", i)
		if _, err := []*Node{a, c}[i%2].Append(context.Background(), line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	sent := <-done
	waitConverged(t, 20*time.Second, lines, a, b, c)
	// Scores are snapshotted once a second (scoreInspectEvery).
	var score float64
	waitFor(t, 10*time.Second, "the attacker's score below the graylist threshold", func() bool {
		s, ok := a.PeerScore(attacker.host.ID())
		score = s
		return ok && s < GraylistThreshold
	})
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("attacker sent %d messages; a dropped %v; attacker score %.0f; heap %d -> %d MiB",
		sent, a.Drops(), score, before.HeapAlloc>>20, after.HeapAlloc>>20)
	if a.Chain().Orphans() > ledger.MaxOrphans {
		t.Errorf("%d orphans held, limit %d", a.Chain().Orphans(), ledger.MaxOrphans)
	}
	// Only a is connected to the attacker: discovery never hands it out,
	// and a relays nothing it rejected, so b and c never see a bad block.
	for _, n := range []*Node{b, c} {
		if n.host.Network().Connectedness(attacker.host.ID()) == network.Connected {
			t.Errorf("node %s connected to the attacker", n.ID())
		}
		if d := n.Drops(); d["invalid_hash"]+d["bad_signature"]+d["malformed"] != 0 {
			t.Errorf("node %s saw the attacker's messages: drops %v", n.ID(), d)
		}
	}
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A node whose only configured peer is gone rejoins, after a restart,
// through a peer it was connected to before: c, given only a, finds b
// through a (discovery); with a gone, c restarts and is back with b.
func TestRememberedPeers(t *testing.T) {
	a := startNode(t, "")
	b := startNode(t, "", a)
	dirC := t.TempDir()
	c := startNode(t, dirC, a)
	waitFor(t, 20*time.Second, "c connected to b", func() bool {
		return c.host.Network().Connectedness(b.ID()) == network.Connected
	})
	// Identified and written down (the file is written every few seconds).
	waitFor(t, 20*time.Second, "b in c's peers file", func() bool {
		return hasPeer(loadPeerBook(dirC, slog.New(slog.DiscardHandler)).infos(), b.ID())
	})
	c.Close()
	a.Close()
	if got := loadPeerBook(dirC, slog.New(slog.DiscardHandler)).infos(); !hasPeer(got, b.ID()) {
		t.Fatalf("c remembers %v, want b (%s) among them", got, b.ID())
	}

	c = startNodeWith(t, Config{DataDir: dirC, Peers: []peer.AddrInfo{{ID: a.ID(), Addrs: a.host.Addrs()}}})
	waitFor(t, 20*time.Second, "the restarted c connected to b", func() bool {
		return c.host.Network().Connectedness(b.ID()) == network.Connected
	})
	if _, err := b.Append(context.Background(), "while a is gone"); err != nil {
		t.Fatal(err)
	}
	waitSameHead(t, 10*time.Second, 1, b, c)
}

func hasPeer(pis []peer.AddrInfo, id peer.ID) bool {
	for _, pi := range pis {
		if pi.ID == id {
			return true
		}
	}
	return false
}

// The book keeps the rememberMax peers seen last, the address dialled
// first, at most MaxAddrsPerPeer addresses each, and survives a write and
// a read; a damaged file is an empty book, not an error.
func TestPeerBook(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	b := loadPeerBook(dir, log)
	now := time.Unix(1_700_000_000, 0)
	var ids []peer.ID
	for i := range rememberMax + 6 {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(key)
		ids = append(ids, id)
		var listen []ma.Multiaddr
		for j := range 10 {
			listen = append(listen, ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/4001", i, j)))
		}
		dialled := ma.StringCast(fmt.Sprintf("/ip4/192.0.2.%d/tcp/3001", i))
		b.met(id, fakeConn{remote: dialled}, listen, now.Add(time.Duration(i)*time.Second))
	}
	if err := b.write(); err != nil {
		t.Fatal(err)
	}
	got := loadPeerBook(dir, log).infos()
	if len(got) != rememberMax {
		t.Fatalf("%d peers remembered, want %d", len(got), rememberMax)
	}
	if got[0].ID != ids[len(ids)-1] || hasPeer(got, ids[0]) {
		t.Errorf("want the peers seen last, most recent first")
	}
	if len(got[0].Addrs) != 8 || got[0].Addrs[0].String() != fmt.Sprintf("/ip4/192.0.2.%d/tcp/3001", len(ids)-1) {
		t.Errorf("addrs %v: want 8, the dialled one first", got[0].Addrs)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, peersFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadPeerBook(dir, log).infos(); len(got) != 0 {
		t.Errorf("a damaged file gave %d peers, want none", len(got))
	}
}

// fakeConn is an outbound connection to remote, for the peer book.
type fakeConn struct {
	network.Conn
	remote ma.Multiaddr
}

func (c fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }
func (c fakeConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Direction: network.DirOutbound}}
}

package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/node/chainsync"
	"gossipchain/protocol"
)

// Remembered peers. A node keeps, in its data dir, the addresses of the
// nodes it was connected to, and dials them when it starts again, so that
// a node whose --peer is gone rejoins through the peers it knew. It
// remembers a peer once identify shows it speaks the sync protocol (a
// gossipchain node, not any libp2p host) over a direct connection; the
// most recently seen rememberMax peers are kept, each with at most
// protocol.MaxAddrsPerPeer addresses: the one this node dialled first,
// then those the peer listens on.
const (
	rememberMax = 64
	// rememberWriteEvery is the most often the file is written: what a
	// crash loses is the peers met since.
	rememberWriteEvery = 5 * time.Second
	// rememberRedial is how often a node with no peer at all dials the
	// peers it remembers again.
	rememberRedial = time.Minute
)

// rememberedPeer is one line of the peers file.
type rememberedPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	Seen  int64    `json:"seen"` // Unix seconds, last connected
}

// remembered is the peers file's content: {"peers": [...]}, most recently
// seen first.
type remembered struct {
	Peers []rememberedPeer `json:"peers"`
}

// peerBook is a node's remembered peers and their file. Its goroutine,
// started by run, owns the writes.
type peerBook struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex // guards peers, dirty
	peers map[peer.ID]rememberedPeer
	dirty bool
}

// loadPeerBook reads the peers file in dataDir. A missing file is an
// empty book; an unreadable one is logged and left to be overwritten.
func loadPeerBook(dataDir string, log *slog.Logger) *peerBook {
	b := &peerBook{path: filepath.Join(dataDir, peersFile), log: log, peers: map[peer.ID]rememberedPeer{}}
	raw, err := os.ReadFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return b
	}
	var r remembered
	if err == nil {
		err = json.Unmarshal(raw, &r)
	}
	if err != nil {
		log.Warn("remembered peers not read; starting without", "file", b.path, "err", err)
		return b
	}
	for _, p := range r.Peers {
		if id, err := peer.Decode(p.ID); err == nil && len(b.peers) < rememberMax {
			p.Addrs = p.Addrs[:min(len(p.Addrs), protocol.MaxAddrsPerPeer)]
			b.peers[id] = p
		}
	}
	return b
}

// infos returns the remembered peers with addresses that parse, most
// recently seen first.
func (b *peerBook) infos() []peer.AddrInfo {
	b.mu.Lock()
	ps := make([]rememberedPeer, 0, len(b.peers))
	for _, p := range b.peers {
		ps = append(ps, p)
	}
	b.mu.Unlock()
	slices.SortFunc(ps, func(a, b rememberedPeer) int { return cmp.Or(cmp.Compare(b.Seen, a.Seen), cmp.Compare(a.ID, b.ID)) })
	var out []peer.AddrInfo
	for _, p := range ps {
		id, _ := peer.Decode(p.ID)
		pi := peer.AddrInfo{ID: id}
		for _, s := range p.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				pi.Addrs = append(pi.Addrs, a)
			}
		}
		if len(pi.Addrs) > 0 {
			out = append(out, pi)
		}
	}
	return out
}

// met records that p is connected over c, listening on listen.
func (b *peerBook) met(p peer.ID, c network.Conn, listen []ma.Multiaddr, now time.Time) {
	var addrs []string
	add := func(a ma.Multiaddr) {
		if s := a.String(); len(addrs) < protocol.MaxAddrsPerPeer && !slices.Contains(addrs, s) {
			addrs = append(addrs, s)
		}
	}
	if c.Stat().Direction == network.DirOutbound {
		add(c.RemoteMultiaddr()) // dialled once, so dialable
	}
	for _, a := range listen {
		add(a)
	}
	if len(addrs) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peers[p] = rememberedPeer{ID: p.String(), Addrs: addrs, Seen: now.Unix()}
	for len(b.peers) > rememberMax { // forget the one seen longest ago
		var oldest peer.ID
		for id, rp := range b.peers {
			if oldest == "" || rp.Seen < b.peers[oldest].Seen {
				oldest = id
			}
		}
		delete(b.peers, oldest)
	}
	b.dirty = true
}

// write saves the book if it changed: a temporary file, synced, then
// renamed over the old one, so that a crash leaves one or the other.
func (b *peerBook) write() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	r := remembered{Peers: make([]rememberedPeer, 0, len(b.peers))}
	for _, p := range b.peers {
		r.Peers = append(r.Peers, p)
	}
	b.dirty = false
	b.mu.Unlock()
	slices.SortFunc(r.Peers, func(a, b rememberedPeer) int { return cmp.Or(cmp.Compare(b.Seen, a.Seen), cmp.Compare(a.ID, b.ID)) })
	raw, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.path), peersFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("remembered peers: %w", err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	_, err = tmp.Write(append(raw, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), b.path)
	}
	if err != nil {
		b.mu.Lock()
		b.dirty = true
		b.mu.Unlock()
		return fmt.Errorf("remembered peers: %w", err)
	}
	return nil
}

// rememberPeers keeps the peer book up to date from identify's results,
// writes it at most every rememberWriteEvery (and once more when the node
// closes), and dials the remembered peers at start and, every
// rememberRedial, while the node has no peer at all.
func (n *Node) rememberPeers(b *peerBook) error {
	sub, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	var dialing atomic.Bool // one round of dials at a time
	dial := func() {
		if !dialing.CompareAndSwap(false, true) {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer dialing.Store(false)
			n.dialRemembered(b)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		write := time.NewTicker(rememberWriteEvery)
		defer write.Stop()
		redial := time.NewTicker(rememberRedial)
		defer redial.Stop()
		save := func() {
			if err := b.write(); err != nil {
				n.log.Warn("remembered peers not saved", "err", err)
			}
		}
		defer save()
		dial()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e := <-sub.Out():
				id := e.(event.EvtPeerIdentificationCompleted)
				if !id.Conn.Stat().Limited && slices.Contains(id.Protocols, protocol.SyncID) {
					b.met(id.Peer, id.Conn, id.ListenAddrs, time.Now())
				}
			case <-write.C:
				save()
			case <-redial.C:
				if len(n.host.Network().Peers()) == 0 {
					dial()
				}
			}
		}
	}()
	return nil
}

// rememberedPerRound is how many remembered peers are dialled at once.
const rememberedPerRound = 4

// dialRemembered dials remembered peers, most recently seen first,
// rememberedPerRound at a time, until the node has its target of
// connections (Config.TargetPeers).
// Configured peers are left to their own redialling (peers.go).
func (n *Node) dialRemembered(b *peerBook) {
	var todo []peer.AddrInfo
	for _, pi := range b.infos() {
		if pi.ID != n.ID() && !n.host.ConnManager().IsProtected(pi.ID, chainsync.ConfiguredTag) && n.usable(pi.ID) {
			todo = append(todo, pi)
		}
	}
	for len(todo) > 0 && n.ctx.Err() == nil && len(n.host.Network().Peers()) < n.cfg.TargetPeers {
		round := todo[:min(len(todo), rememberedPerRound)]
		todo = todo[len(round):]
		var wg sync.WaitGroup
		for _, pi := range round {
			if n.host.Network().Connectedness(pi.ID) == network.Connected {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, time.Hour)
				ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
				defer cancel()
				if err := n.host.Connect(directDial(ctx, pi.Addrs), pi); err != nil {
					n.log.Debug("remembered peer unreachable", "peer", pi.ID, "err", err)
					return
				}
				n.log.Info("connected to a remembered peer", "peer", pi.ID)
			}()
		}
		wg.Wait()
	}
}

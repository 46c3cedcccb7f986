package node

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node/chainsync"
	"gossipchain/protocol"
)

// Config describes one node: what an operator sets (the command's flags) and
// what a program embedding a node may replace (transports, libp2p and
// GossipSub options, the clock). The zero value plus a DataDir is a node on
// a free loopback port with no peers.
//
// A node reports what happens to it (blocks stored, the head moving, peers,
// syncs, re-appended lines, being left alone) as Events: Node.Subscribe and
// Node.Follow.
type Config struct {
	// ListenHost is the IP address to listen on: default 127.0.0.1 (this
	// machine only); 0.0.0.0 (or ::) for every interface.
	ListenHost string
	// Announce, if set, are the addresses peers are told to dial (and the
	// ones printed), instead of the listening ones: for a node behind NAT
	// or port forwarding.
	Announce []ma.Multiaddr
	// Port is the TCP port; 0 picks a free one.
	Port int
	// QUICPort is the UDP port of QUIC (quic-v1), which a node listens on
	// beside TCP: 0 means Port's number (a free one of its own when Port
	// is 0). DisableQUIC leaves QUIC off; so does a PSK (libp2p's private
	// networks are TCP only).
	QUICPort    int
	DisableQUIC bool
	// Reachability from behind NAT (reach.go). A node asks its peers
	// whether it can be dialled (AutoNAT v1 and v2) and answers theirs.
	// One that can be dialled offers a circuit relay v2 service with
	// bounded resources, unless DisableRelayService; one that cannot
	// reserves a slot on a relay it knows (its Peers, then connected
	// peers that offer the service) and advertises the relayed address,
	// unless DisableAutoRelay; hole punching (DCUtR) turns a relayed
	// connection into a direct one, unless DisableHolePunching; and the
	// node asks the router to forward its ports (UPnP, NAT-PMP), unless
	// DisablePortMap. With Transports set, all of this is off, and mDNS
	// too.
	DisableRelayService bool
	DisableAutoRelay    bool
	DisableHolePunching bool
	DisablePortMap      bool
	// DisableMDNS turns off LAN discovery (mdns.go), which is on when the
	// node listens on an address other than loopback.
	DisableMDNS bool
	// TargetPeers is how many connections discovery looks for (dialling
	// peers its peers name) and remembered peers are dialled up to: 0
	// means chainsync.TargetPeers (8); a negative number none, so the node
	// dials only its configured peers (and what mDNS finds, and members it
	// lost, to heal a split). Fewer connections mean fewer copies of each
	// block to send and receive; more, a mesh that is harder to cut off.
	TargetPeers int
	// DisableRememberedPeers stops the node keeping the addresses of the
	// nodes it was connected to in its data dir and dialling them when it
	// starts (remember.go). Off with Transports set.
	DisableRememberedPeers bool
	// Reachability, if ReachabilityPublic or ReachabilityPrivate, is
	// taken as known instead of found out by AutoNAT: a node on a public
	// address offers its relay service at once, one known to be behind
	// NAT looks for a relay at once. "" means find out.
	Reachability string
	// DataDir holds the identity key and the chain store.
	DataDir string
	// Peers are dialled at start and kept: re-dialled at once while the
	// node has fewer than chainsync.TargetPeers peers, every 1-2 minutes
	// otherwise (peers.go).
	Peers []peer.AddrInfo
	// Logger receives the node's structured logs; nil discards them.
	Logger *slog.Logger
	// SyncTimeout bounds every read and write of a sync exchange; a peer
	// that stalls longer is dropped. Default 10s.
	SyncTimeout time.Duration

	// PSK, if set, makes this a private network: only nodes holding the same
	// pre-shared key can connect at all (libp2p pnet).
	PSK pnet.PSK
	// Authors, if set, lists the peer IDs allowed to author blocks; blocks
	// by anyone else are rejected (and their senders penalised).
	Authors []string
	// Finality is the deepest reorg accepted, in blocks; 0 means
	// ledger.DefaultFinality.
	Finality int

	// AuthorRate is how many new blocks per second, per author, this node
	// stores and relays (budget.go); 0 means DefaultAuthorRate, negative
	// means no budget. AuthorBurst is how many at once; 0 means ten
	// seconds of AuthorRate.
	AuthorRate  int
	AuthorBurst int

	// Transports, if set, replaces the node's own transports and listen
	// addresses (TCP and QUIC on ListenHost, which are then unused): libp2p
	// options that choose transports and listen addresses, such as a
	// simulated network's.
	Transports []libp2p.Option
	// HostOptions are further libp2p options, applied after the node's own
	// (a bandwidth reporter, say).
	HostOptions []libp2p.Option
	// Gater, if set, vets every connection after the node's own blocklist
	// has: an embedding program's allow list, or a test cutting links.
	Gater connmgr.ConnectionGater
	// GossipOptions are further GossipSub options, applied after the
	// node's own (a mesh degree: meshParams; flood publishing off; a
	// tracer).
	GossipOptions []pubsub.Option
	// ChainOptions are further ledger options, applied after the node's
	// own (ledger.WithSettle, say).
	ChainOptions []ledger.Option
	// Clock, if set, replaces time.Now everywhere the node and its chain
	// judge time: block timestamps, finality's settling, the author
	// budget, bans and the sync request rate limit. A simulated network
	// runs its nodes on its virtual clock; a test holds a rate limit
	// still.
	Clock func() time.Time
}

// DefaultDataDir is the data dir of a node on port, so that two nodes on one
// machine never share one by default.
func DefaultDataDir(port int) string {
	return filepath.Join(".gossipchain", "node-"+strconv.Itoa(port))
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.ListenHost == "" {
		cfg.ListenHost = "127.0.0.1"
	}
	if cfg.DataDir == "" {
		return cfg, fmt.Errorf("no data dir given")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("port %d out of range 0-65535", cfg.Port)
	}
	switch cfg.Reachability {
	case "", ReachabilityPublic, ReachabilityPrivate:
	default:
		return cfg, fmt.Errorf("reachability %q is not %q or %q", cfg.Reachability, ReachabilityPublic, ReachabilityPrivate)
	}
	if cfg.QUICPort < 0 || cfg.QUICPort > 65535 {
		return cfg, fmt.Errorf("QUIC port %d out of range 0-65535", cfg.QUICPort)
	}
	if cfg.Finality < 0 {
		return cfg, fmt.Errorf("finality depth %d is negative", cfg.Finality)
	}
	switch {
	case cfg.TargetPeers == 0:
		cfg.TargetPeers = chainsync.TargetPeers
	case cfg.TargetPeers > connLow:
		return cfg, fmt.Errorf("target of %d peers is above the %d connections a node keeps without trimming", cfg.TargetPeers, connLow)
	}
	if cfg.Finality == 0 {
		cfg.Finality = ledger.DefaultFinality
	}
	if cfg.AuthorRate == 0 {
		cfg.AuthorRate = DefaultAuthorRate
	}
	if cfg.AuthorBurst <= 0 {
		cfg.AuthorBurst = authorBurstFactor * max(1, cfg.AuthorRate)
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = protocol.SyncTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return cfg, nil
}

// ChainFile returns the path of the chain store inside a data dir.
func ChainFile(dataDir string) string { return filepath.Join(dataDir, chainFile) }

// Files inside a data dir.
const (
	identityFile = "identity.key"
	chainFile    = "chain.db"
	peersFile    = "peers.json" // remembered peers (remember.go)
)

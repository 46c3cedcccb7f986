package node

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	libp2pmetrics "github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// Config describes one node. The zero value plus a DataDir is a node on a
// free loopback port with no peers.
type Config struct {
	// ListenHost is the IP address to listen on: default 127.0.0.1 (this
	// machine only); 0.0.0.0 (or ::) for every interface.
	ListenHost string
	// Announce, if set, are the addresses peers are told to dial (and the
	// ones printed), instead of the listening ones: for a node behind NAT
	// or port forwarding.
	Announce []ma.Multiaddr
	// OnAlone, if set, is called when the last peer disconnects (true) and
	// when a peer connects again after that (false).
	OnAlone func(alone bool)
	// Port is the TCP port; 0 picks a free one.
	Port int
	// DataDir holds the identity key and the chain store.
	DataDir string
	// Peers are dialled at start and re-dialled whenever they drop.
	Peers []peer.AddrInfo
	// Logger receives the node's structured logs; nil discards them.
	Logger *slog.Logger
	// OnBlock, if set, is called for every block that arrives from the
	// network and is stored (not for blocks this node appends itself).
	OnBlock func(b *ledger.Block, from peer.ID)
	// OnSync, if set, is called when a sync of more than a few hundred
	// blocks starts, as it progresses, and when any sync that added blocks
	// ends (Done set).
	OnSync func(SyncProgress)
	// OnReappend, if set, is called for every block that carries a line
	// typed on this node again, after a reorg took its first block off the
	// main chain.
	OnReappend func(b *ledger.Block)
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

	// gater, if set, vets every connection (tests cut links with it).
	gater connmgr.ConnectionGater
	// settleAtOnce lets finality protect blocks as soon as they are deep
	// (tests of finality; see ledger.WithSettle).
	settleAtOnce bool
	// clock, if set, replaces time.Now for the sync request rate limit
	// (tests drive it on a clock of their own, so machine speed does not
	// matter).
	clock func() time.Time
	// bandwidth, if set, counts the bytes the host sends and receives
	// (the benchmark suite's origin egress).
	bandwidth libp2pmetrics.Reporter
	// sim, if set, puts the host on a simulated network (QUIC over an
	// in-memory packet network) instead of TCP: the simulator
	// (sim_test.go). Everything else is the production node.
	sim *simHost
	// checkCost, if set, is slept by the validator for each new block: on
	// the simulator's virtual clock, real CPU time does not pass, so the
	// cost of checking and storing a block is modelled by this delay.
	checkCost time.Duration
	// chainClock, if set, is the ledger's clock (the simulator's virtual
	// clock starts in 2000, before genesis: it shifts it to today).
	chainClock func() time.Time
	// meshDegree, if set, replaces GossipSub's mesh degree D (and the
	// bounds that follow from it: meshParams); noFloodPublish turns flood
	// publishing off. The simulator and the benchmark suite compare them.
	meshDegree     int
	noFloodPublish bool
}

// simHost is where a simulated node's host listens, and the options that
// attach it to the simulated network.
type simHost struct {
	listen string
	opts   []libp2p.Option
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
	if cfg.Finality < 0 {
		return cfg, fmt.Errorf("finality depth %d is negative", cfg.Finality)
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
	return cfg, nil
}

// ChainFile returns the path of the chain store inside a data dir.
func ChainFile(dataDir string) string { return filepath.Join(dataDir, chainFile) }

// Files inside a data dir.
const (
	identityFile = "identity.key"
	chainFile    = "chain.db"
)

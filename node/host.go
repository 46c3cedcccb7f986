package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// The libp2p host: every option it is built with is chosen here.

// Connection limits. The connection manager trims connections above
// connHigh down to connLow (configured peers are protected), sparing those
// younger than connGrace; the resource manager refuses what would exceed
// its limits outright. connGrace is 10 s, not the library's minute: long
// enough for a newcomer to get a status and a peers answer and for
// GossipSub to tag a mesh peer, short enough that a seed that a flash crowd
// filled makes room again soon (in the simulator, with a minute, a third
// of 1,000 nodes starting at once stayed locked out of four full seeds).
const (
	connLow   = 64
	connHigh  = 128
	connGrace = 10 * time.Second
)

// resourceManager returns libp2p's resource manager with explicit limits
// instead of ones scaled to the machine's memory: a node of a small network
// needs few connections, and a peer should not be able to take them all.
func resourceManager() (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: 512, ConnsInbound: 256, ConnsOutbound: 256,
			Streams: 8192, StreamsInbound: 4096, StreamsOutbound: 4096,
			FD: 1024, Memory: 512 << 20,
		},
		Transient: rcmgr.ResourceLimits{Conns: 64, ConnsInbound: 32, ConnsOutbound: 32, Streams: 256},
		// One peer: a few connections (a simultaneous dial can leave two),
		// enough streams for gossip, sync and identify.
		PeerDefault: rcmgr.ResourceLimits{
			Conns: 8, ConnsInbound: 4, ConnsOutbound: 4,
			Streams: 256, StreamsInbound: 128, StreamsOutbound: 128,
			Memory: 64 << 20,
		},
	}.Build(scaling.Scale(512<<20, 1024))
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
}

func newHost(key crypto.PrivKey, cfg Config, reg prometheus.Registerer, gater *blocklist) (host.Host, error) {
	opts, err := hostLimits(key, reg, gater)
	if err != nil {
		return nil, err
	}
	if cfg.PSK != nil {
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	}
	if len(cfg.Announce) > 0 {
		announce := cfg.Announce
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if cfg.Transports != nil {
		h, err := libp2p.New(slices.Concat(opts, cfg.Transports, cfg.HostOptions)...)
		if err != nil {
			return nil, fmt.Errorf("start libp2p host: %w", err)
		}
		return h, nil
	}
	ip := net.ParseIP(cfg.ListenHost)
	if ip == nil {
		return nil, fmt.Errorf("listen address %q is not an IP address", cfg.ListenHost)
	}
	listen := fmt.Sprintf("/ip4/%s/tcp/%d", ip, cfg.Port)
	if ip.To4() == nil {
		listen = fmt.Sprintf("/ip6/%s/tcp/%d", ip, cfg.Port)
	}
	opts = append(opts,
		libp2p.ListenAddrStrings(listen),
		// Without reuseport a port that is in use is an error, not a silent
		// second listener sharing it.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
	)
	h, err := libp2p.New(append(opts, cfg.HostOptions...)...)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("listen on %s: port %d is already in use", listen, cfg.Port)
		}
		return nil, fmt.Errorf("start libp2p host on %s: %w", listen, err)
	}
	return h, nil
}

// hostLimits is what every host of a node has, whatever its transports: its
// identity, no relay, metrics on the node's registry, the resource
// manager, the connection manager and the gater.
func hostLimits(key crypto.PrivKey, reg prometheus.Registerer, gater *blocklist) ([]libp2p.Option, error) {
	rm, err := resourceManager()
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(connLow, connHigh, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return []libp2p.Option{
		libp2p.Identity(key),
		libp2p.UserAgent(UserAgent()), // peers see it in GET /peers
		libp2p.DisableRelay(),
		// The host's, swarm's and resource manager's own metrics, on the
		// node's registry (GET /metrics).
		libp2p.PrometheusRegisterer(reg),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
	}, nil
}

package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
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

func newHost(key crypto.PrivKey, cfg Config, reg prometheus.Registerer, gater *blocklist, r *reach) (host.Host, error) {
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
		// Relaying, AutoNAT, hole punching and port mapping need real
		// sockets: a program with transports of its own adds what it
		// wants in HostOptions.
		opts = append(opts, libp2p.DisableRelay())
		h, err := libp2p.New(slices.Concat(opts, cfg.Transports, cfg.HostOptions)...)
		if err != nil {
			return nil, fmt.Errorf("start libp2p host: %w", err)
		}
		return h, nil
	}
	listen, err := listenAddrs(cfg)
	if err != nil {
		return nil, err
	}
	// TCP listens with SO_REUSEPORT and dials from its listening port, so
	// that a router maps a node's connections out to one port that peers
	// see (identify records only such observations), which TCP hole
	// punching needs. Reuseport would also let a second node share a port
	// in use without a word: the port is first bound without it, which
	// fails if anyone holds it.
	if err := portFree(listen[0]); err != nil {
		return nil, err
	}
	opts = append(opts,
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
	)
	if hasQUIC(listen) {
		// QUIC shares its UDP socket between listening and dialling (so a
		// peer behind NAT sees one port, which hole punching needs); the
		// socket itself is bound without SO_REUSEPORT, so a port in use is
		// an error here too.
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	opts = append(opts, reachOptions(cfg, reg, r)...)
	h, err := libp2p.New(append(opts, cfg.HostOptions...)...)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			for _, a := range listen {
				if err := listenError(a); err != nil {
					return nil, err
				}
			}
		}
		return nil, fmt.Errorf("start libp2p host on %s: %w", listen[0], err)
	}
	// libp2p starts if it can listen on any one address: each must be.
	for _, a := range listen {
		if !listening(h, a) {
			h.Close()
			if err := listenError(a); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("listen on %s: libp2p could not", a)
		}
	}
	return h, nil
}

// listenAddrs are the addresses a node with its own transports listens
// on: TCP on ListenHost:Port, then QUIC (UDP) on QUICPort, or Port's
// number, unless QUIC is off or the network private (libp2p's private
// networks are TCP only).
func listenAddrs(cfg Config) ([]ma.Multiaddr, error) {
	ip := net.ParseIP(cfg.ListenHost)
	if ip == nil {
		return nil, fmt.Errorf("listen address %q is not an IP address", cfg.ListenHost)
	}
	family := "ip4"
	if ip.To4() == nil {
		family = "ip6"
	}
	addrs := []string{fmt.Sprintf("/%s/%s/tcp/%d", family, ip, cfg.Port)}
	if !cfg.DisableQUIC && cfg.PSK == nil {
		port := cfg.QUICPort
		if port == 0 {
			port = cfg.Port
		}
		addrs = append(addrs, fmt.Sprintf("/%s/%s/udp/%d/quic-v1", family, ip, port))
	}
	out := make([]ma.Multiaddr, len(addrs))
	for i, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("listen address %s: %w", s, err)
		}
		out[i] = a
	}
	return out, nil
}

func hasQUIC(addrs []ma.Multiaddr) bool {
	return slices.ContainsFunc(addrs, isQUIC)
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

func isTCP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_TCP)
	return err == nil && !isRelayed(a)
}

// listening reports whether h listens on a (its transport, at its IP; any
// port if a's is 0).
func listening(h host.Host, a ma.Multiaddr) bool {
	for _, l := range h.Network().ListenAddresses() {
		if isQUIC(l) != isQUIC(a) || isTCP(l) != isTCP(a) || manet.IsIPUnspecified(l) != manet.IsIPUnspecified(a) {
			continue // another transport (the relay's listens too)
		}
		if port(a) == 0 || port(l) == port(a) {
			return true
		}
	}
	return false
}

// port is a's TCP or UDP port, 0 if it has none.
func port(a ma.Multiaddr) int {
	for _, p := range []int{ma.P_TCP, ma.P_UDP} {
		if v, err := a.ValueForProtocol(p); err == nil {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// portFree returns an error if a's TCP port is taken (by anyone, with
// SO_REUSEPORT or not); port 0 is always free.
func portFree(a ma.Multiaddr) error {
	if port(a) == 0 {
		return nil
	}
	return listenError(a)
}

// listenError says why a cannot be listened on, nil if it can: libp2p
// only logs why, so this binds the address itself to find out.
func listenError(a ma.Multiaddr) error {
	network, addr, err := manet.DialArgs(a)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a, err)
	}
	proto := "TCP"
	if isQUIC(a) {
		proto = "UDP"
		var c net.PacketConn
		if c, err = net.ListenPacket(network, addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen(network, addr); err == nil {
			l.Close()
		}
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("listen on %s: %s port %d is already in use", a, proto, port(a))
	case err != nil:
		return fmt.Errorf("listen on %s: %w", a, err)
	}
	return nil
}

// reachOptions make a node reachable from behind NAT, and help others be
// (reach.go): the relay transport, AutoNAT v1 and v2 (asking and
// answering), and, each unless its Config switch turns it off, the relay
// service, auto-relay, hole punching and port mapping.
func reachOptions(cfg Config, reg prometheus.Registerer, r *reach) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.EnableRelay(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableNATService(),
		libp2p.AutoNATServiceRateLimit(autonatPerMinute, autonatPerPeerPerMinute, time.Minute),
	}
	switch cfg.Reachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if !cfg.DisableRelayService {
		// Started and stopped by r, on its own verdict (reach.go).
		r.relayOpts = []relayv2.Option{
			relayv2.WithResources(relayResources()),
			relayv2.WithACL(relayACL{r.usable}),
			relayv2.WithMetricsTracer(relayv2.NewMetricsTracer(relayv2.WithRegisterer(reg))),
		}
	}
	if !cfg.DisableAutoRelay {
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(r.relayCandidates,
			// One relay is enough to start with: a small network may have
			// just one public node.
			autorelay.WithMinCandidates(1),
			autorelay.WithBootDelay(0),
			autorelay.WithMinInterval(relayLookEvery),
			autorelay.WithBackoff(relayBackoff),
		))
	}
	if !cfg.DisableHolePunching {
		opts = append(opts, libp2p.EnableHolePunching(holepunch.WithMetricsAndEventTracer(
			holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)), r)))
	}
	if !cfg.DisablePortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts
}

// Bounds of the AutoNAT v1 service: dial-back requests answered per
// minute, in all and per peer (libp2p's defaults, stated here; its AutoNAT
// v2 service answers 60 a minute, 12 per peer, 2 at once per peer).
const (
	autonatPerMinute        = 30
	autonatPerPeerPerMinute = 3
)

// Auto-relay asks for relay candidates (relayCandidates) at most every
// relayLookEvery, and leaves one that refused a reservation alone for
// relayBackoff (libp2p's default is an hour: a public node whose own
// AutoNAT has not yet found it public refuses at first, and would be
// left alone that long).
const (
	relayLookEvery = 5 * time.Second
	relayBackoff   = time.Minute
)

// relayResources bounds the relay service of a public node
// (docs/SECURITY.md). A relayed connection exists for the hole punch
// that replaces it, so libp2p's per-circuit limits (2 minutes, 128 KiB
// each way) are kept; the slots are fewer than its defaults, for a node
// whose job is the chain.
func relayResources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{Duration: 2 * time.Minute, Data: 128 << 10}
	r.ReservationTTL = time.Hour
	r.MaxReservations = 64
	r.MaxCircuits = 8
	r.MaxReservationsPerIP = 8
	r.MaxReservationsPerASN = 32
	return r
}

// hostLimits is what every host of a node has, whatever its transports: its
// identity, metrics on the node's registry, the resource manager, the
// connection manager and the gater.
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
		// The host's, swarm's and resource manager's own metrics, on the
		// node's registry (GET /metrics).
		libp2p.PrometheusRegisterer(reg),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
	}, nil
}

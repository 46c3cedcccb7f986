package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/libp2p/go-libp2p/gologshim"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/node/chainsync"
	"gossipchain/node/httpapi"
)

// nodeSynopsis is how to run a node, in the overview.
const nodeSynopsis = `  gossipchain [--port N] [--quic-port N] [--quic=false] [--listen IP]
              [--announce MULTIADDR]... [--peer MULTIADDR]...
              [--reachability public|private] [--relay-service=false] [--auto-relay=false]
              [--hole-punching=false] [--port-map=false] [--mdns=false]
              [--remember-peers=false] [--target-peers N]
              [--data DIR] [--api HOST:PORT] [--api-token TOKEN] [--metrics HOST:PORT]
              [--psk FILE] [--authors FILE] [--finality N] [--author-rate N]
              [--ready-file PATH] [--log LEVEL] [--log-format text|json] [--version]
`

// nodeOptions are the node's flags.
type nodeOptions struct {
	dataDir
	listen     string
	quic       bool
	quicPort   int
	reach      string
	relaySvc   bool
	autoRelay  bool
	holePunch  bool
	portMap    bool
	mdns       bool
	remember   bool
	target     int
	announce   addrList
	api        string
	apiToken   string
	metrics    string
	peers      peerList
	psk        string
	authors    string
	finality   int
	authorRate int
	readyFile  string
	logLevel   string
	logFormat  string
	version    bool
	// src says which flags came from the environment.
	src sources
}

func nodeFlags(args []string, stderr io.Writer) (*nodeOptions, error) {
	var o nodeOptions
	fs := flag.NewFlagSet("gossipchain", flag.ContinueOnError)
	dataDirFlags(fs, &o.dataDir, "TCP port to listen on (0: any free port); QUIC listens on the same number (UDP) unless --quic-port says otherwise")
	fs.BoolVar(&o.quic, "quic", true, "listen on QUIC (quic-v1, UDP) beside TCP; a --psk node is TCP only (libp2p's private networks do not support QUIC)")
	fs.IntVar(&o.quicPort, "quic-port", 0, "UDP port for QUIC (0: the same number as --port, or any free port with --port 0)")
	fs.Var(&o.peers, "peer", "bootstrap peer /ip4/…/tcp/…/p2p/<id> or /ip4/…/udp/…/quic-v1/p2p/<id>: dialled, re-dialled at once while the node has fewer than 8 peers and every 1-2 min otherwise; the node finds the others through it; repeat or comma-separate")
	fs.StringVar(&o.listen, "listen", "127.0.0.1", "IP address to listen on: 127.0.0.1 is this machine only, 0.0.0.0 every interface")
	fs.Var(&o.announce, "announce", "address peers should dial instead of the listening ones, e.g. /ip4/203.0.113.7/tcp/3001 (behind NAT); repeat or comma-separate")
	fs.StringVar(&o.reach, "reachability", "", "take this node as public (dialable from the internet: its relay service starts at once) or private (behind NAT: it looks for a relay at once) instead of asking peers (AutoNAT)")
	fs.BoolVar(&o.relaySvc, "relay-service", true, "once peers find this node dialable, relay for nodes behind NAT until they connect directly (bounded: docs/SECURITY.md)")
	fs.BoolVar(&o.autoRelay, "auto-relay", true, "once peers find this node behind NAT, reserve a slot on a relay (a --peer, or a peer that offers one) and advertise the relayed address")
	fs.BoolVar(&o.holePunch, "hole-punching", true, "turn connections through a relay into direct ones (DCUtR)")
	fs.BoolVar(&o.portMap, "port-map", true, "ask the router to forward the ports (UPnP, NAT-PMP)")
	fs.BoolVar(&o.mdns, "mdns", true, "find other nodes on the LAN (mDNS), when --listen is not loopback")
	fs.IntVar(&o.target, "target-peers", chainsync.TargetPeers, "connections to look for beyond the --peer addresses (dialling peers that peers name); 0: dial only those")
	fs.BoolVar(&o.remember, "remember-peers", true, "keep the addresses of the last 64 nodes this one was connected to in the data dir (peers.json), and dial them at start")
	fs.StringVar(&o.api, "api", "", "serve the HTTP API on HOST:PORT (off by default), e.g. 127.0.0.1:8001")
	fs.StringVar(&o.apiToken, "api-token", "", "require this bearer token on every API request; needed for a non-loopback --api")
	fs.StringVar(&o.metrics, "metrics", "", "serve GET /metrics alone on HOST:PORT, read-only and with no token (off by default): 127.0.0.1:9001 for this machine, 0.0.0.0:9001 for a Prometheus elsewhere")
	fs.StringVar(&o.psk, "psk", "", "private network: only nodes with this pre-shared key file can connect (make one with: gossipchain psk)")
	fs.StringVar(&o.authors, "authors", "", "file of peer IDs allowed to author blocks, one per line; blocks by others are rejected")
	fs.IntVar(&o.authorRate, "author-rate", node.DefaultAuthorRate, "new blocks per second this node stores and relays per author (burst: ten seconds' worth); own lines wait for it; 0: no budget")
	fs.IntVar(&o.finality, "finality", ledger.DefaultFinality, fmt.Sprintf("deepest reorg accepted, in blocks, once blocks have been on the main chain for %s; branches forking deeper are refused", ledger.DefaultSettle))
	fs.StringVar(&o.readyFile, "ready-file", "", `once the node listens (and its API and metrics port serve), write {"id","addrs","api","metrics"} as JSON to this file, for scripts and launchers`)
	fs.StringVar(&o.logLevel, "log", "", "log level: debug, info, warn or error (default warn when the console and the log share a terminal, which already shows what info would say; info otherwise)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json (one object a line), libp2p's own lines included")
	fs.BoolVar(&o.version, "version", false, "print the version and exit (gossipchain version says more)")
	env := envFlags(fs, "version")
	if err := parse(fs, args, usage()+"\nNode flags:\n", "--help", stderr, env); err != nil {
		return nil, err
	}
	if o.version {
		return &o, nil
	}
	src, err := applyEnv(fs, env)
	if err != nil {
		return nil, err
	}
	o.src = src
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	case o.port < 0 || o.port > 65535:
		return nil, fmt.Errorf("%s %d is out of range 0-65535", src.name("port"), o.port)
	case o.quicPort < 0 || o.quicPort > 65535:
		return nil, fmt.Errorf("%s %d is out of range 0-65535", src.name("quic-port"), o.quicPort)
	case o.reach != "" && o.reach != node.ReachabilityPublic && o.reach != node.ReachabilityPrivate:
		return nil, fmt.Errorf("%s %q must be public or private", src.name("reachability"), o.reach)
	case o.psk != "" && (set(fs, "quic-port") || set(fs, "quic") && o.quic):
		return nil, fmt.Errorf("--psk nodes are TCP only: libp2p's private networks do not support QUIC (drop --quic-port and --quic, or GOSSIPCHAIN_QUIC_PORT and GOSSIPCHAIN_QUIC)")
	case net.ParseIP(o.listen) == nil:
		return nil, fmt.Errorf("%s %q is not an IP address", src.name("listen"), o.listen)
	case o.authorRate < 0:
		return nil, fmt.Errorf("%s %d must be 0 (no budget) or more", src.name("author-rate"), o.authorRate)
	case o.finality < 1:
		return nil, fmt.Errorf("%s %d must be at least 1", src.name("finality"), o.finality)
	case o.target < 0:
		return nil, fmt.Errorf("%s %d must be 0 (only the --peer addresses) or more", src.name("target-peers"), o.target)
	case o.logLevel != "" && !validLevel(o.logLevel):
		return nil, fmt.Errorf("%s %q: want debug, info, warn or error", src.name("log"), o.logLevel)
	case o.logFormat != "text" && o.logFormat != "json":
		return nil, fmt.Errorf("%s %q: want text or json", src.name("log-format"), o.logFormat)
	}
	return &o, o.resolve(src)
}

// nodeCmd runs a node: its console on stdin and stdout, its log on
// stderr, until SIGINT or SIGTERM.
func nodeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := nodeFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		printVersion(stdout)
		return nil
	}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := newLogger(stderr, o.logFormat, logLevel(o.logLevel, stdout, stderr))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := &console{out: stdout, tty: isTerminal(stdout)}
	cfg, err := nodeConfig(o, logger)
	if err != nil {
		return err
	}
	n, err := node.New(cfg)
	if errors.Is(err, ledger.ErrCorrupt) {
		return fmt.Errorf("%w (for a full report: gossipchain check --data %s)", err, o.data)
	}
	if err != nil {
		return err
	}
	defer n.Close()
	c.node = n
	// The console follows the node's events from here on; in the moment
	// since New returned, a connection has not even finished its
	// handshake, so nothing it would print has happened yet.
	events := n.Follow()
	defer events.Stop()
	go c.follow(events)
	c.printf("gossipchain node %s, height %d, data %s\n", n.ID(), n.Chain().Height(), o.data)
	api, err := startAPI(o, n, logger, c)
	if err != nil {
		return err
	}
	if api != nil {
		defer api.Close()
	}
	metrics, err := startMetrics(o, n, logger, c)
	if err != nil {
		return err
	}
	if metrics != nil {
		defer metrics.Close()
	}
	tcp, quic := joinAddrs(n)
	c.printf("peers can join with: --peer %s\n", tcp)
	if quic != nil {
		c.printf("             or over QUIC: --peer %s\n", quic)
	}
	c.printf("%s\n", n.Addr())
	if o.readyFile != "" {
		if err := writeReady(o.readyFile, n, api, metrics); err != nil {
			return err
		}
	}

	go c.read(ctx, stdin)
	<-ctx.Done()
	c.printf("shutting down\n")
	for _, s := range []*httpapi.Server{api, metrics} {
		if s != nil {
			s.Close() // before the node: no request finds it half closed
		}
	}
	return n.Close()
}

// nodeConfig turns the flags into the node's configuration, loading the
// files they name.
func nodeConfig(o *nodeOptions, logger *slog.Logger) (node.Config, error) {
	cfg := node.Config{
		Port:        o.port,
		QUICPort:    o.quicPort,
		DisableQUIC: !o.quic,

		Reachability:        o.reach,
		DisableRelayService: !o.relaySvc,
		DisableAutoRelay:    !o.autoRelay,
		DisableHolePunching: !o.holePunch,
		DisablePortMap:      !o.portMap,
		DisableMDNS:         !o.mdns,

		DisableRememberedPeers: !o.remember,
		TargetPeers:            targetPeers(o.target),

		ListenHost: o.listen,
		Announce:   o.announce,
		DataDir:    o.data,
		Peers:      o.peers,
		Finality:   o.finality,
		AuthorRate: authorRate(o.authorRate),
		Logger:     logger,
	}
	var err error
	if o.psk != "" {
		if cfg.PSK, err = node.LoadPSK(o.psk); err != nil {
			return cfg, err
		}
	}
	if o.authors != "" {
		if cfg.Authors, err = node.LoadAuthors(o.authors); err != nil {
			return cfg, err
		}
	}
	if o.api != "" {
		if err := httpapi.CheckAddr(o.api, o.apiToken); err != nil {
			return cfg, err
		}
	}
	if o.metrics != "" {
		if err := httpapi.CheckMetricsAddr(o.metrics); err != nil {
			return cfg, fmt.Errorf("%s: %w", o.src.name("metrics"), err)
		}
	}
	return cfg, nil
}

// joinAddrs are the node's first TCP and first QUIC address (nil if it has
// none), for the console.
func joinAddrs(n *node.Node) (tcp, quic ma.Multiaddr) {
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			if quic == nil {
				quic = a
			}
		} else if tcp == nil {
			tcp = a
		}
	}
	return tcp, quic
}

// startAPI serves the HTTP API if --api asks for it (nil otherwise) and
// says where on the console.
func startAPI(o *nodeOptions, n *node.Node, logger *slog.Logger, c *console) (*httpapi.Server, error) {
	if o.api == "" {
		return nil, nil
	}
	api, err := httpapi.Start(o.api, n, n.Chain(), httpapi.Options{Token: o.apiToken, Logger: logger})
	if err != nil {
		return nil, err
	}
	c.printf("api: http://%s\n", api.Addr())
	c.printf("dashboard: http://%s/\n", api.Addr())
	return api, nil
}

// startMetrics serves the metrics port if --metrics asks for it (nil
// otherwise) and says where on the console.
func startMetrics(o *nodeOptions, n *node.Node, logger *slog.Logger, c *console) (*httpapi.Server, error) {
	if o.metrics == "" {
		return nil, nil
	}
	s, err := httpapi.StartMetrics(o.metrics, n, httpapi.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	c.printf("metrics: http://%s/metrics\n", s.Addr())
	return s, nil
}

// ready is the file --ready-file writes: what a launcher needs to reach a
// node, so that no script reads it off the console.
type ready struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api"` // "http://HOST:PORT", "" without --api
	// Metrics is "http://HOST:PORT/metrics", "" without --metrics.
	Metrics string `json:"metrics"`
}

// writeReady writes n's ready file at path atomically (a temporary file,
// then a rename): a reader finds either no file or a whole one.
func writeReady(path string, n *node.Node, api, metrics *httpapi.Server) error {
	r := ready{ID: n.ID().String(), Addrs: []string{}}
	for _, a := range n.Addrs() {
		r.Addrs = append(r.Addrs, a.String())
	}
	if api != nil {
		r.API = "http://" + api.Addr()
	}
	if metrics != nil {
		r.Metrics = "http://" + metrics.Addr() + "/metrics"
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// targetPeers is node.Config.TargetPeers for --target-peers n: 0 there
// means none (a negative number in the config, where 0 is the default).
func targetPeers(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// startProfile writes a CPU profile if $GOSSIPCHAIN_CPUPROFILE names a
// file (docs/BENCHMARKS.md's profiling recipes: one file per process,
// PATH.PID); the returned func stops it. SIGUSR1 ends the file being
// written and starts the next (PATH.PID.1, .2, ...), so a profile can
// cover one stretch of a run: the process benchmark's burst signals before
// and after it.
func startProfile() (stop func(), err error) {
	path := os.Getenv("GOSSIPCHAIN_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	var mu sync.Mutex
	var f *os.File
	start := func(name string) error {
		var err error
		if f, err = os.Create(name); err != nil {
			return fmt.Errorf("GOSSIPCHAIN_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			f = nil
			return fmt.Errorf("GOSSIPCHAIN_CPUPROFILE: %w", err)
		}
		return nil
	}
	end := func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
			f = nil
		}
	}
	base := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := start(base); err != nil {
		return nil, err
	}
	next := make(chan os.Signal, 1)
	signal.Notify(next, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-next:
			}
			mu.Lock()
			end()
			if err := start(fmt.Sprintf("%s.%d", base, n)); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			mu.Unlock()
		}
	}()
	return func() {
		signal.Stop(next)
		close(done)
		mu.Lock()
		defer mu.Unlock()
		end()
	}, nil
}

// newLogger is the node's logger, on stderr in format (text or json) at
// level. libp2p logs through slog too, into the same handler. The node
// reports every failure itself, once; libp2p's lines (one error becomes
// several) show only at debug.
func newLogger(stderr io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if format == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	libp2pLevel := slog.LevelError + 4
	if level <= slog.LevelDebug {
		libp2pLevel = slog.LevelDebug
	}
	gologshim.SetDefaultHandler(node.AtLeast(h, libp2pLevel))
	return slog.New(h)
}

// validLevel reports whether s names a log level --log takes.
func validLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// logLevel is --log's level or, without one, the default: on a terminal
// the console speaks to the person and the log to the operator, so where
// both go to the same terminal the log says only what the console does
// not (warnings and errors: "node started" and "synced" would repeat the
// console's address lines and "~ synced"); to a file, a journal or a
// container's log, everything from info up.
func logLevel(flag string, stdout, stderr io.Writer) slog.Level {
	var l slog.Level
	if flag != "" && l.UnmarshalText([]byte(flag)) == nil {
		return l
	}
	if sameTerminal(stdout, stderr) {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// authorRate turns the flag's value into node.Config's: 0 there means the
// default, here no budget.
func authorRate(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

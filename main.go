// Command gossipchain runs a blockchain gossip node: every line typed on its
// console becomes a block that every node in the network ends up holding.
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
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/gologshim"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/node"
	"gossipchain/node/httpapi"
)

const usage = `gossipchain: a blockchain gossip node.

Usage:
  gossipchain [--port N] [--listen IP] [--announce MULTIADDR]... [--peer MULTIADDR]...
              [--data DIR] [--api HOST:PORT] [--api-token TOKEN]
              [--psk FILE] [--authors FILE] [--finality N] [--author-rate N]
              [--ready-file PATH]
  gossipchain id [--port N | --data DIR]
  gossipchain check [--port N | --data DIR]
  gossipchain trace --api [NAME=]URL [--api ...] BLOCK
  gossipchain chaos [--seed S] [--duration D] [--nodes N] [--rate R] [--dir DIR]
  gossipchain psk > swarm.key

Type a line to add it as a block; /help lists console commands.

Flags:
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "gossipchain:", err)
		os.Exit(1)
	}
}

// addrList is a repeatable flag of multiaddrs, also comma-separated.
type addrList []ma.Multiaddr

func (a *addrList) String() string { return "" }

func (a *addrList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		addr, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("%q is not a multiaddr: %v", s, err)
		}
		*a = append(*a, addr)
	}
	return nil
}

// peerList is a repeatable flag that also takes comma-separated lists.
type peerList []peer.AddrInfo

func (p *peerList) String() string { return "" }

func (p *peerList) Set(v string) error {
	var addrs addrList
	if err := addrs.Set(v); err != nil {
		return err
	}
	for _, addr := range addrs {
		pi, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return fmt.Errorf("%q must end in /p2p/<peer id>: %v", addr, err)
		}
		*p = append(*p, *pi)
	}
	return nil
}

type options struct {
	port       int
	listen     string
	announce   addrList
	data       string
	api        string
	apiToken   string
	peers      peerList
	psk        string
	authors    string
	finality   int
	authorRate int
	readyFile  string
}

func parseFlags(name string, args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&o.port, "port", 3000, "TCP port to listen on (0: any free port)")
	fs.StringVar(&o.data, "data", "", "data dir for the identity and chain (default .gossipchain/node-<port>)")
	if name == "gossipchain" {
		fs.Var(&o.peers, "peer", "bootstrap peer /ip4/…/tcp/…/p2p/<id>: dialled, re-dialled at once while the node has fewer than 8 peers and every 1-2 min otherwise; the node finds the others through it; repeat or comma-separate")
		fs.StringVar(&o.listen, "listen", "127.0.0.1", "IP address to listen on: 127.0.0.1 is this machine only, 0.0.0.0 every interface")
		fs.Var(&o.announce, "announce", "address peers should dial instead of the listening ones, e.g. /ip4/203.0.113.7/tcp/3001 (behind NAT); repeat or comma-separate")
		fs.StringVar(&o.api, "api", "", "serve the HTTP API on HOST:PORT (off by default), e.g. 127.0.0.1:8001")
		fs.StringVar(&o.apiToken, "api-token", os.Getenv("GOSSIPCHAIN_API_TOKEN"), "require this bearer token on every API request (default $GOSSIPCHAIN_API_TOKEN); needed for a non-loopback --api")
		fs.StringVar(&o.psk, "psk", "", "private network: only nodes with this pre-shared key file can connect (make one with: gossipchain psk)")
		fs.StringVar(&o.authors, "authors", "", "file of peer IDs allowed to author blocks, one per line; blocks by others are rejected")
		fs.IntVar(&o.authorRate, "author-rate", node.DefaultAuthorRate, "new blocks per second this node stores and relays per author (burst: ten seconds' worth); own lines wait for it; 0: no budget")
		fs.IntVar(&o.finality, "finality", ledger.DefaultFinality, fmt.Sprintf("deepest reorg accepted, in blocks, once blocks have been on the main chain for %s; branches forking deeper are refused", ledger.DefaultSettle))
		fs.StringVar(&o.readyFile, "ready-file", "", `once the node listens (and its API serves), write {"id","addrs","api"} as JSON to this file, for scripts and launchers`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, fmt.Errorf("%v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return nil, fmt.Errorf("--port %d is out of range 0-65535", o.port)
	}
	if name == "gossipchain" && net.ParseIP(o.listen) == nil {
		return nil, fmt.Errorf("--listen %q is not an IP address", o.listen)
	}
	if name == "gossipchain" && o.authorRate < 0 {
		return nil, fmt.Errorf("--author-rate %d must be 0 (no budget) or more", o.authorRate)
	}
	if name == "gossipchain" && o.finality < 1 {
		return nil, fmt.Errorf("--finality %d must be at least 1", o.finality)
	}
	if o.data == "" {
		o.data = node.DefaultDataDir(o.port)
	}
	return &o, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "psk" {
		if len(args) > 1 {
			return fmt.Errorf("psk takes no arguments; it prints a new key file: gossipchain psk > swarm.key")
		}
		key, err := node.NewPSK()
		if err != nil {
			return err
		}
		_, err = stdout.Write(key)
		return err
	}
	if len(args) > 0 && args[0] == "id" {
		o, err := parseFlags("id", args[1:], stderr)
		if err != nil {
			return err
		}
		id, err := node.IdentityID(o.data)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, id)
		return nil
	}
	if len(args) > 0 && args[0] == "chaos" {
		return chaosCmd(args[1:], stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "trace" {
		return traceCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		o, err := parseFlags("check", args[1:], stderr)
		if err != nil {
			return err
		}
		return check(o.data, stdout, stderr)
	}
	o, err := parseFlags("gossipchain", args, stderr)
	if err != nil {
		return err
	}
	if path := os.Getenv("GOSSIPCHAIN_CPUPROFILE"); path != "" {
		// For docs/BENCHMARKS.md's profiling recipes: one file per process.
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return fmt.Errorf("GOSSIPCHAIN_CPUPROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("GOSSIPCHAIN_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	// libp2p logs through slog too. The node reports every failure itself,
	// once; libp2p's lines (one error becomes several) show only at debug.
	libp2pLevel := slog.LevelError + 4
	if logLevel() <= slog.LevelDebug {
		libp2pLevel = slog.LevelDebug
	}
	gologshim.SetDefaultHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: libp2pLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := &console{out: stdout, tty: isTerminal(stdout)}
	cfg := node.Config{
		Port:       o.port,
		ListenHost: o.listen,
		Announce:   o.announce,
		DataDir:    o.data,
		Peers:      o.peers,
		Finality:   o.finality,
		AuthorRate: authorRate(o.authorRate),
		Logger:     logger,
		OnBlock:    c.received,
		OnSync:     c.synced,
		OnReappend: c.reappended,
		OnAlone:    c.alone,
	}
	if o.psk != "" {
		if cfg.PSK, err = node.LoadPSK(o.psk); err != nil {
			return err
		}
	}
	if o.authors != "" {
		if cfg.Authors, err = node.LoadAuthors(o.authors); err != nil {
			return err
		}
	}
	if o.api != "" {
		if err := httpapi.CheckAddr(o.api, o.apiToken); err != nil {
			return err
		}
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
	c.printf("gossipchain node %s, height %d, data %s\n", n.ID(), n.Chain().Height(), o.data)
	var api *httpapi.Server
	if o.api != "" {
		if api, err = httpapi.Start(o.api, n, httpapi.Options{Token: o.apiToken, Logger: logger}); err != nil {
			return err
		}
		defer api.Close()
		c.printf("api: http://%s\n", api.Addr())
		c.printf("dashboard: http://%s/\n", api.Addr())
	}
	c.printf("peers can join with: --peer %s\n", n.Addr())
	c.printf("%s\n", n.Addr())
	if o.readyFile != "" {
		apiURL := ""
		if api != nil {
			apiURL = "http://" + api.Addr()
		}
		if err := writeReady(o.readyFile, n, apiURL); err != nil {
			return err
		}
	}

	go c.read(ctx, stdin)
	<-ctx.Done()
	c.printf("shutting down\n")
	if api != nil {
		api.Close() // before the node: no request finds it half closed
	}
	return n.Close()
}

// ready is the file --ready-file writes: what a launcher needs to reach a
// node, so that no script reads it off the console.
type ready struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api"` // "http://HOST:PORT", "" without --api
}

// writeReady writes n's ready file at path atomically (a temporary file,
// then a rename): a reader finds either no file or a whole one.
func writeReady(path string, n *node.Node, api string) error {
	r := ready{ID: n.ID().String(), Addrs: []string{}, API: api}
	for _, a := range n.Addrs() {
		r.Addrs = append(r.Addrs, a.String())
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

// check verifies the store in dir offline, showing progress on stderr, and
// prints a one-line verdict.
func check(dir string, stdout, stderr io.Writer) error {
	path := node.ChainFile(dir)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check %s: no chain store there (%v)", dir, errors.Unwrap(err))
	}
	tty := isTerminal(stderr)
	last := time.Now()
	fmt.Fprintf(stderr, "checking %s (%d MiB): every block's hash, signature, index entry and link\n", path, st.Size()>>20)
	rep, err := ledger.CheckStore(path, func(p ledger.CheckProgress) {
		if time.Since(last) < 250*time.Millisecond && !(tty && p.Total > 0 && p.Done == p.Total) {
			return
		}
		last = time.Now()
		line := fmt.Sprintf("%s: %d", p.Stage, p.Done)
		if p.Total > 0 {
			line = fmt.Sprintf("%s: %d of %d blocks (%d%%)", p.Stage, p.Done, p.Total, 100*p.Done/p.Total)
		}
		if tty {
			fmt.Fprintf(stderr, "\r\033[K%s", line)
		} else if p.Total == 0 || p.Done == p.Total || p.Done%(64*ledger.CheckBatch) < ledger.CheckBatch {
			fmt.Fprintln(stderr, line)
		}
	})
	if tty {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	perBlock := uint64(st.Size()) / max(1, rep.Blocks)
	fmt.Fprintf(stdout, "ok: height %d, head %s, %d blocks (%d lines typed here, %d pending), %d MiB on disk (%d bytes per block)\n",
		rep.Height, rep.Head, rep.Blocks, rep.Lines, rep.Pending, st.Size()>>20, perBlock)
	return nil
}

// authorRate turns the flag's value into node.Config's: 0 there means the
// default, here no budget.
func authorRate(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("GOSSIPCHAIN_LOG"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// shortID returns the last 6 characters of a peer ID, as peers print it.
func shortID(id string) string {
	if len(id) > 6 {
		return id[len(id)-6:]
	}
	return id
}

func blockLine(b *ledger.Block) string {
	return fmt.Sprintf("#%d %s by %s: %s", b.Index, b.Short(), shortID(b.Author), b.Data)
}

package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/node"
)

// Flags more than one command has.

// dataDir is --port and --data: where a node keeps its identity and
// chain. The node listens on the port; id and check read the data dir
// the node on that port uses.
type dataDir struct {
	port int
	data string
}

func dataDirFlags(fs *flag.FlagSet, d *dataDir, portUsage string) {
	fs.IntVar(&d.port, "port", 3000, portUsage)
	fs.StringVar(&d.data, "data", "", "data dir for the identity and chain (default .gossipchain/node-<port>)")
}

// resolve checks the port and fills in the default data dir.
func (d *dataDir) resolve() error {
	if d.port < 0 || d.port > 65535 {
		return fmt.Errorf("--port %d is out of range 0-65535", d.port)
	}
	if d.data == "" {
		d.data = node.DefaultDataDir(d.port)
	}
	return nil
}

// set reports whether the flag name was given on the command line.
func set(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
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

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
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

// resolve checks the port and fills in the default data dir; src says
// which flags came from the environment.
func (d *dataDir) resolve(src sources) error {
	if d.port < 0 || d.port > 65535 {
		return fmt.Errorf("%s %d is out of range 0-65535", src.name("port"), d.port)
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

// Flags from the environment. A command's settings can come from
// GOSSIPCHAIN_<FLAG> as well as from its command line (--api-token from
// GOSSIPCHAIN_API_TOKEN): what a container or a service unit sets. The
// command line wins; an empty variable counts as unset.

// envPrefix begins every flag's variable.
const envPrefix = "GOSSIPCHAIN_"

// envName is the variable of the flag named name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// sources names, for each flag set from the environment, its variable, so
// that an error about a value names where it came from.
type sources map[string]string

// name is how an error names flag: its variable if it came from the
// environment, --flag otherwise.
func (s sources) name(flag string) string {
	if v, ok := s[flag]; ok {
		return v
	}
	return "--" + flag
}

// parseEnvFlags is parseFlags for a command whose flags may also come
// from the environment (envFlags, applyEnv).
func parseEnvFlags(fs *flag.FlagSet, args []string, usage, see string, stderr io.Writer) (sources, error) {
	env := envFlags(fs)
	if err := parse(fs, args, usage, see, stderr, env); err != nil {
		return nil, err
	}
	return applyEnv(fs, env)
}

// envFlags returns the variable of each of fs's flags but those in
// except (actions, such as --version, rather than settings), by flag
// name: --help lists them.
func envFlags(fs *flag.FlagSet, except ...string) map[string]string {
	env := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(except, f.Name) {
			env[f.Name] = envName(f.Name)
		}
	})
	return env
}

// applyEnv sets each flag in env that the command line did not set from
// its variable, if that is set. A value the flag refuses is an error
// naming the variable.
func applyEnv(fs *flag.FlagSet, env map[string]string) (sources, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	src := sources{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name, ok := env[f.Name]
		value := os.Getenv(name)
		if !ok || given[f.Name] || value == "" || err != nil {
			return
		}
		if serr := fs.Set(f.Name, value); serr != nil {
			err = fmt.Errorf("environment %s=%.80q: not a value for --%s: %v", name, value, f.Name, serr)
			return
		}
		src[f.Name] = name
	})
	return src, err
}

// printFlags lists fs's flags as flag.PrintDefaults does, with each one's
// environment variable (env, by flag name) under it.
func printFlags(w io.Writer, fs *flag.FlagSet, env map[string]string) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if kind != "" {
			line += " " + kind
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			if kind == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
		if v, ok := env[f.Name]; ok {
			fmt.Fprintf(w, "    \tenvironment: %s\n", v)
		}
	})
	if len(env) > 0 {
		fmt.Fprintf(w, "\nA flag with an environment line can be set there too, as %s<FLAG>\n(the command line wins; an empty variable counts as unset).\n", envPrefix)
	}
}

// Command gossipchain runs a blockchain gossip node: every line typed on its
// console becomes a block that every node in the network ends up holding.
// Its other commands each live in a file of their own (cmd_<name>.go),
// dispatched from the table below; the node itself is cmd_node.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "gossipchain:", err)
		os.Exit(1)
	}
}

// command is a subcommand: gossipchain NAME ARGS.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the table of subcommands; without one, gossipchain runs a
// node (nodeCmd).
func commands() []command {
	return []command{
		{"id", "[--port N | --data DIR]", "print the peer ID of a data dir (creating its key if needed)", idCmd},
		{"check", "[--port N | --data DIR]", "verify a stopped node's store offline, all of it", checkCmd},
		{"trace", "--api [NAME=]URL [--api ...] BLOCK", "draw how a block spread through a set of nodes", traceCmd},
		{"chaos", "[--seed S] [--duration D] [--nodes N] [--rate R] [--dir DIR]", "run a local cluster under seeded faults, then check every chain", chaosCmd},
		{"psk", "> swarm.key", "print a new pre-shared key for a private network (--psk)", pskCmd},
		{"version", "", "print the version, the commit it was built from and the Go toolchain", versionCmd},
		{"help", "[COMMAND]", "this overview, or a command's usage", helpCmd},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		for _, c := range commands() {
			if args[0] == c.name {
				return c.run(args[1:], stdin, stdout, stderr)
			}
		}
	}
	return nodeCmd(args, stdin, stdout, stderr)
}

// usage is the overview: how to run a node, and the commands.
func usage() string {
	var b strings.Builder
	b.WriteString("gossipchain: a blockchain gossip node.\n\nUsage:\n")
	b.WriteString(nodeSynopsis)
	for _, c := range commands() {
		fmt.Fprintf(&b, "%s\n", strings.TrimRight("  gossipchain "+c.name+" "+c.args, " "))
	}
	b.WriteString("\nWithout a command, gossipchain runs a node: type a line on its console to\nadd it as a block; /help lists console commands.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-7s %s\n", c.name, c.summary)
	}
	b.WriteString("\n\"gossipchain --help\" lists the node's flags, \"gossipchain COMMAND --help\" a\ncommand's.\n")
	return b.String()
}

// helpCmd prints the overview, or with a command's name its usage, to
// stdout.
func helpCmd(args []string, stdin io.Reader, stdout, _ io.Writer) error {
	switch {
	case len(args) == 0 || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, usage())
		return nil
	case len(args) > 1:
		return fmt.Errorf("help takes one command at most (see gossipchain help)")
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run([]string{"--help"}, stdin, stdout, stdout); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil
		}
	}
	return fmt.Errorf("help: no command %q (see gossipchain help)", args[0])
}

// parseFlags parses args with fs. On --help it prints usage and fs's
// flags to stderr and returns flag.ErrHelp; any other error says where
// help is (see).
func parseFlags(fs *flag.FlagSet, args []string, usage, see string, stderr io.Writer) error {
	return parse(fs, args, usage, see, stderr, nil)
}

func parse(fs *flag.FlagSet, args []string, usage, see string, stderr io.Writer, env map[string]string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		printFlags(stderr, fs, env)
		return err
	}
	if err != nil {
		return fmt.Errorf("%v (see %s)", err, see)
	}
	return nil
}

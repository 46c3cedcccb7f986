package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"gossipchain/node"
)

const pskUsage = `usage: gossipchain psk > swarm.key

Prints a new pre-shared key in libp2p's key file format. Nodes started with
--psk swarm.key connect only to nodes with the same key: a private network.
`

func pskCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("psk", flag.ContinueOnError)
	err := parseFlags(fs, args, pskUsage, "gossipchain psk --help", stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil || fs.NArg() > 0 {
		return fmt.Errorf("psk takes no arguments; it prints a new key file: gossipchain psk > swarm.key")
	}
	key, err := node.NewPSK()
	if err != nil {
		return err
	}
	_, err = stdout.Write(key)
	return err
}

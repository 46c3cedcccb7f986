package main

import (
	"flag"
	"fmt"
	"io"

	"gossipchain/node"
)

const idUsage = `usage: gossipchain id [--port N | --data DIR]

Prints the peer ID of a node's data dir, creating its key if there is none,
so that a script can build --peer addresses before the node starts.

Flags:
`

func idCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var d dataDir
	fs := flag.NewFlagSet("id", flag.ContinueOnError)
	dataDirFlags(fs, &d, "the port of the node whose data dir to use (.gossipchain/node-<port>)")
	src, err := parseEnvFlags(fs, args, idUsage, "gossipchain id --help", stderr)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see gossipchain id --help)", fs.Arg(0))
	}
	if err := d.resolve(src); err != nil {
		return err
	}
	id, err := node.IdentityID(d.data)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"gossipchain/ledger"
	"gossipchain/node"
)

const checkUsage = `usage: gossipchain check [--port N | --data DIR]

Verifies a stopped node's store offline, all of it: every block's hash,
signature, index entry and link, the main chain and head pointer, the
records of typed lines. It shows progress on stderr and ends with one line:
"ok: height N, ..." on stdout, or exit status 1 and the first problem,
naming the height.

Flags:
`

func checkCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var d dataDir
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	dataDirFlags(fs, &d, "the port of the node whose data dir to use (.gossipchain/node-<port>)")
	src, err := parseEnvFlags(fs, args, checkUsage, "gossipchain check --help", stderr)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see gossipchain check --help)", fs.Arg(0))
	}
	if err := d.resolve(src); err != nil {
		return err
	}
	return check(d.data, stdout, stderr)
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

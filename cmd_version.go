package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"time"

	"gossipchain/node"
)

const versionUsage = `usage: gossipchain version

Prints which build of gossipchain this is: its version (the one peers see
in GET /peers, as gossipchain/<version>), the commit it was built from and
the Go toolchain. "devel" is a build without a version; "-dirty" a build
from a tree with uncommitted changes. The commit is known for a binary
built with "go build" in a git clone (go run and -buildvcs=false record
none).
`

func versionCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, versionUsage, "gossipchain version --help", stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version takes no arguments (see gossipchain version --help)")
	}
	printVersion(stdout)
	return nil
}

// printVersion writes the build: the version on the first line, then the
// commit and the toolchain.
func printVersion(w io.Writer) {
	b := node.ReadBuild()
	fmt.Fprintf(w, "gossipchain %s\n", b)
	switch {
	case b.Revision == "":
		fmt.Fprintln(w, "commit unknown (built without VCS information)")
	default:
		state := "clean"
		if b.Modified {
			state = "modified"
		}
		at := "unknown time"
		if !b.Time.IsZero() {
			at = b.Time.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "commit %s of %s, %s\n", b.Revision, at, state)
	}
	fmt.Fprintf(w, "%s %s/%s\n", b.Go, runtime.GOOS, runtime.GOARCH)
}

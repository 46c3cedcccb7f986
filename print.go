package main

import (
	"fmt"
	"io"
	"os"

	"gossipchain/ledger"
)

// How the commands show peers and blocks.

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sameTerminal reports whether a and b are the same terminal: a console
// and a log a person reads together.
func sameTerminal(a, b io.Writer) bool {
	fa, ok := a.(*os.File)
	if !ok || !isTerminal(a) || !isTerminal(b) {
		return false
	}
	fb := b.(*os.File)
	ia, err := fa.Stat()
	if err != nil {
		return false
	}
	ib, err := fb.Stat()
	return err == nil && os.SameFile(ia, ib)
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

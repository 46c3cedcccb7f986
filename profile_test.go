package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gossipchain/internal/harness"
)

// With GOSSIPCHAIN_CPUPROFILE set a node writes its CPU profile to
// PATH.PID, and SIGUSR1 ends that file and starts PATH.PID.1, which the
// node writes when it stops: both are whole profiles (gzipped, as pprof
// writes them).
func TestProfileFiles(t *testing.T) {
	base := filepath.Join(t.TempDir(), "prof")
	n := harness.StartTB(t, harness.Config{Env: []string{"GOSSIPCHAIN_CPUPROFILE=" + base}})
	first := fmt.Sprintf("%s.%d", base, n.Pid())
	next := first + ".1"
	if err := n.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the next profile file", func() bool {
		_, err := os.Stat(next)
		return err == nil
	})
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{first, next} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d bytes, not a gzipped profile", f, len(b))
		}
	}
}

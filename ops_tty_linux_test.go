package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"gossipchain/internal/harness"
)

// openPTY opens a pseudo-terminal pair, closed when the test ends (the
// terminal side at once after a process has it, by the caller).
func openPTY(t *testing.T) (term, pts *os.File) {
	t.Helper()
	term, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { term.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, term.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, term.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return term, pts
}

// runOnTerminal runs a node whose stdout is a terminal, and its stderr
// too unless stderr is given; once ready, it stops it and returns what
// the terminal showed.
func runOnTerminal(t *testing.T, stderr io.Writer, args ...string) string {
	t.Helper()
	term, pts := openPTY(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(harness.Binary(t), append([]string{"--port", "0", "--data", filepath.Join(dir, "d"), "--ready-file", ready}, args...)...)
	cmd.Stdout, cmd.Stderr = pts, pts
	if stderr != nil {
		cmd.Stderr = stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close() // the node holds the terminal now
	shown := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, term) // until the node exits: EIO once no one holds the terminal
		shown <- b.String()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 30*time.Second, "the node ready", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("node: %v", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("node did not stop within 15 s of SIGTERM")
	}
	select {
	case s := <-shown:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close after the node exited")
		return ""
	}
}

// On a terminal a person sees each event once: where the console and the
// log share one, the log holds back what the console says (info: "node
// started" beside the address lines); --log info, or a log elsewhere, has
// it.
func TestTerminalSaysItOnce(t *testing.T) {
	shown := runOnTerminal(t, nil)
	if !strings.Contains(shown, "peers can join with: --peer /ip4/127.0.0.1/tcp/") {
		t.Fatalf("the console's address line is not on the terminal:\n%s", shown)
	}
	if strings.Contains(shown, "node started") || strings.Contains(shown, "level=INFO") {
		t.Errorf("the terminal shows the log's info lines beside the console's:\n%s", shown)
	}

	if shown := runOnTerminal(t, nil, "--log", "info"); !strings.Contains(shown, `msg="node started"`) {
		t.Errorf("--log info on a terminal: no \"node started\" line:\n%s", shown)
	}

	var log syncBuffer
	runOnTerminal(t, &log)
	if !strings.Contains(log.String(), `level=INFO msg="node started"`) {
		t.Errorf("the log apart from the terminal (2>file) holds no info line:\n%s", log.String())
	}
}

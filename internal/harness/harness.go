// Package harness runs gossipchain nodes as processes, for the end-to-end
// tests, the benchmarks and the chaos command: it builds the binary once,
// starts a node, waits for its --ready-file (never for console text),
// reads it through its HTTP API, and stops, kills, freezes or resumes it.
//
// Nothing started is left running: a node started with StartTB is killed
// when its test ends, one started with Start when its launcher calls
// Close; and on Linux the kernel kills every node whose launcher dies.
package harness

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// TB is the part of testing.TB the harness uses (so the chaos command,
// which is no test, does not link the testing package).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Defaults of a Config and of Stop.
const (
	ReadyTimeout = 30 * time.Second
	StopTimeout  = 10 * time.Second
	APITimeout   = 10 * time.Second
)

// Config says how to start a node. The harness adds --port, --data,
// --ready-file, --api 127.0.0.1:0 and a --peer per peer to Args.
type Config struct {
	// Bin is the program; "" means the one Build makes.
	Bin string
	// Args come first on the command line: a node's other flags
	// (--psk FILE), or, for a test binary that writes a ready file as a
	// node does, its -test.run and a "--".
	Args []string
	// Data is the node's data dir (required by Start; StartTB makes a
	// temporary one). A restart passes the same one.
	Data string
	// Port is the p2p port; 0 picks a free one.
	Port int
	// Peers are addresses to dial (--peer).
	Peers []string
	// NoAPI leaves the HTTP API off; API and the helpers that use it
	// then have nothing to talk to.
	NoAPI bool
	// Env is added to this process's environment.
	Env []string
	// Stdin opens a pipe to the node's console (Node.Stdin). Without it
	// the console reads an empty input, which leaves a node running.
	Stdin bool
	// Stdout gets the console; Stderr the log. nil discards. A writer's
	// errors are ignored: a node never blocks on its output.
	Stdout, Stderr io.Writer
	// ReadyFile is the --ready-file path; default Data + ".ready".
	ReadyFile string
	// ReadyTimeout bounds the wait for it; default ReadyTimeout.
	ReadyTimeout time.Duration
	// Client makes the API requests; default one with APITimeout.
	Client *http.Client
}

// Node is a running (or exited) node process.
type Node struct {
	cfg    Config
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	tail   *tail
	start  time.Time
	ready  Ready
	after  time.Duration // from start to the ready file
	done   chan struct{}
	waited error // cmd.Wait's result, set before done is closed
}

// Start starts a node and waits until it is ready. The caller must end
// it (Stop, Kill or Close).
func Start(cfg Config) (*Node, error) {
	if cfg.Data == "" {
		return nil, errors.New("harness: Config.Data is required")
	}
	if cfg.Bin == "" {
		bin, err := Build()
		if err != nil {
			return nil, err
		}
		cfg.Bin = bin
	}
	if cfg.ReadyFile == "" {
		cfg.ReadyFile = cfg.Data + ".ready"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = ReadyTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: APITimeout}
	}
	// A file left by an earlier run would read as ready at once.
	os.Remove(cfg.ReadyFile)
	n, err := launch(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.waitReady(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// StartTB is Start for a test: Bin and Data default to the built binary
// and a temporary dir, a failure fails tb, and the node is killed when
// the test ends.
func StartTB(tb TB, cfg Config) *Node {
	tb.Helper()
	if cfg.Bin == "" {
		cfg.Bin = Binary(tb)
	}
	if cfg.Data == "" {
		cfg.Data = filepath.Join(tb.TempDir(), "data")
	}
	n, err := Start(cfg)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// launch starts the process, with no wait.
func launch(cfg Config) (*Node, error) {
	args := append([]string{}, cfg.Args...)
	args = append(args, "--port", strconv.Itoa(cfg.Port), "--data", cfg.Data, "--ready-file", cfg.ReadyFile)
	if !cfg.NoAPI {
		args = append(args, "--api", "127.0.0.1:0")
	}
	for _, p := range cfg.Peers {
		args = append(args, "--peer", p)
	}
	cmd := exec.Command(cfg.Bin, args...)
	if len(cfg.Env) > 0 {
		cmd.Env = append(os.Environ(), cfg.Env...)
	}
	n := &Node{cfg: cfg, cmd: cmd, tail: &tail{}, done: make(chan struct{})}
	if cfg.Stdout != nil {
		cmd.Stdout = lenient{cfg.Stdout}
	}
	cmd.Stderr = teeTail{cfg.Stderr, n.tail}
	var err error
	if cfg.Stdin {
		if n.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	dieWithParent(cmd)
	n.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Bin, err)
	}
	go func() {
		n.waited = cmd.Wait()
		close(n.done)
	}()
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() string { return n.ready.ID }

// Addrs are the node's full addresses, /p2p/<id> included.
func (n *Node) Addrs() []string { return n.ready.Addrs }

// Addr is the node's first address, the one to give to peers.
func (n *Node) Addr() string {
	if len(n.ready.Addrs) == 0 {
		return ""
	}
	return n.ready.Addrs[0]
}

// Port is the TCP port of Addr (0 if it has none): a restart on the same
// port keeps the address the others know.
func (n *Node) Port() int {
	a, err := ma.NewMultiaddr(n.Addr())
	if err != nil {
		return 0
	}
	v, err := a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(v)
	return p
}

// API is the URL of the node's HTTP API, "http://127.0.0.1:PORT"; ""
// with NoAPI.
func (n *Node) API() string { return n.ready.API }

// Data is the node's data dir.
func (n *Node) Data() string { return n.cfg.Data }

// Pid is the process ID, for reading its CPU or memory from /proc.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Stdin is the pipe to the node's console (nil without Config.Stdin).
func (n *Node) Stdin() io.WriteCloser { return n.stdin }

// ReadyAfter is the time from the process's start to its ready file.
func (n *Node) ReadyAfter() time.Duration { return n.after }

// StderrTail is the end of what the node logged, for failure messages.
func (n *Node) StderrTail() string { return n.tail.String() }

// Signal sends sig to the process.
func (n *Node) Signal(sig os.Signal) error { return n.cmd.Process.Signal(sig) }

// Stop ends the node as Ctrl-C does (resuming it first, if frozen),
// waits up to StopTimeout, and kills it if it is still running. It
// returns nil if the node exited with status 0.
func (n *Node) Stop() error {
	n.Signal(syscall.SIGCONT)
	n.Signal(os.Interrupt)
	select {
	case <-n.done:
		return n.waited
	case <-time.After(StopTimeout):
		n.Kill()
		return fmt.Errorf("node %s did not stop within %v of SIGINT: killed", n.cfg.Data, StopTimeout)
	}
}

// Kill ends the node with SIGKILL, a crash, and waits for it to be gone.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.done
}

// Close makes sure the process is gone, killing it if it runs: what a
// launcher without a TB defers.
func (n *Node) Close() error {
	select {
	case <-n.done:
	default:
		n.Kill()
	}
	return nil
}

// Pause freezes the node (SIGSTOP): its connections stay open, it
// answers nothing.
func (n *Node) Pause() error { return n.Signal(syscall.SIGSTOP) }

// Resume lets a frozen node run again (SIGCONT).
func (n *Node) Resume() error { return n.Signal(syscall.SIGCONT) }

// Done is closed once the process has exited and its output is written.
func (n *Node) Done() <-chan struct{} { return n.done }

// Wait waits for the process to exit and returns how: nil for status 0.
func (n *Node) Wait() error {
	<-n.done
	return n.waited
}

// ExitCode is the exit status, -1 while the process runs or if a signal
// ended it.
func (n *Node) ExitCode() int {
	select {
	case <-n.done:
		return n.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

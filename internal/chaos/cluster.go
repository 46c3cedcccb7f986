package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gossipchain/internal/harness"
)

// member is one node of the cluster, across its restarts: same data dir,
// same port, same peer ID.
type member struct {
	k   int
	dir string
	id  string
	mu  sync.Mutex    // guards the fields below
	n   *harness.Node // the running process
	up  bool          // running and not frozen: lines may be typed on it
}

func (m *member) node() *harness.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

func (m *member) setUp(up bool) {
	m.mu.Lock()
	m.up = up
	m.mu.Unlock()
}

func (m *member) isUp() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up
}

// cluster is the run's nodes and its log.
type cluster struct {
	bin, dir string
	log      io.Writer
	start    time.Time
	mu       sync.Mutex // guards appending to members
	members  []*member
}

func (c *cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "chaos: %5.1fs "+format+"\n", append([]any{time.Since(c.start).Seconds()}, args...)...)
}

// all is the members so far.
func (c *cluster) all() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// add starts node k (one more than there are), peered with a running
// node, and makes it a member.
func (c *cluster) add() error {
	k := len(c.all()) + 1
	m := &member{k: k, dir: filepath.Join(c.dir, fmt.Sprintf("node-%d", k))}
	if err := c.launch(m); err != nil {
		return err
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return nil
}

// launch starts m's process, on its port if it had one, and waits until
// it is ready. Its console goes to DIR.out, its log to DIR.log.
func (c *cluster) launch(m *member) error {
	out, err := os.Create(m.dir + ".out")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		out.Close()
		return err
	}
	cfg := harness.Config{Bin: c.bin, Data: m.dir, Stdout: out, Stderr: logf, ReadyTimeout: 20 * time.Second}
	if old := m.node(); old != nil {
		cfg.Port = old.Port() // the same port on restart: the others know it
	}
	if peer := c.peerFor(m.k); peer != "" {
		cfg.Peers = []string{peer}
	}
	n, err := harness.Start(cfg)
	if err != nil {
		out.Close()
		logf.Close()
		return fmt.Errorf("node %d: %v", m.k, err)
	}
	go func() {
		<-n.Done()
		out.Close()
		logf.Close()
	}()
	m.mu.Lock()
	m.n, m.id, m.up = n, n.ID(), true
	m.mu.Unlock()
	return nil
}

// peerFor is an address for a (re)started node k to dial: node 1's, or
// the first other running node's.
func (c *cluster) peerFor(k int) string {
	for _, m := range c.all() {
		if m.k != k && m.isUp() {
			return m.node().Addr()
		}
	}
	return ""
}

// upNodes lists the nodes running and not frozen, by number.
func (c *cluster) upNodes() map[int]*harness.Node {
	out := map[int]*harness.Node{}
	for _, m := range c.all() {
		m.mu.Lock()
		if m.up {
			out[m.k] = m.n
		}
		m.mu.Unlock()
	}
	return out
}

// cut makes every node of side and every other node block each other
// (block true) or lets them connect again.
func (c *cluster) cut(side []int, block bool) {
	var wg sync.WaitGroup
	members := c.all()
	for _, a := range members {
		for _, b := range members {
			if slices.Contains(side, a.k) == slices.Contains(side, b.k) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if block {
					err = a.node().Call(http.MethodPost, "/peers/blocked", map[string]string{"id": b.id}, nil)
				} else {
					err = a.node().Call(http.MethodDelete, "/peers/blocked/"+b.id, nil, nil)
				}
				if err != nil {
					c.logf("node %d: %v", a.k, err)
				}
			}()
		}
	}
	wg.Wait()
}

// runFault carries out one fault, its end included.
func (c *cluster) runFault(ctx context.Context, f Fault) error {
	c.logf("%s", f.what())
	switch f.Kind {
	case "kill":
		m := c.all()[f.Node-1]
		m.setUp(false)
		m.node().Kill()
		if err := sleep(ctx, f.Length); err != nil {
			return err
		}
		c.logf("restart node %d", m.k)
		return c.launch(m)
	case "pause":
		m := c.all()[f.Node-1]
		m.setUp(false)
		m.node().Pause()
		err := sleep(ctx, f.Length)
		m.node().Resume()
		m.setUp(true)
		c.logf("resume node %d", m.k)
		return err
	case "partition":
		c.cut(f.Side, true)
		err := sleep(ctx, f.Length)
		c.cut(f.Side, false)
		c.logf("heal the cut")
		return err
	case "join":
		if err := c.add(); err != nil {
			return err
		}
		c.logf("node %d joined", len(c.all()))
	}
	return nil
}

// converge waits until every node reports one head, nothing pending and
// no sync, reporting progress while it waits, and returns how long that
// took.
func (c *cluster) converge(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	lastReport := start
	for {
		heads, same := c.heads()
		if same {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no convergence within %v: %s", timeout, strings.Join(heads, "; "))
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			c.logf("waiting for one head: %s", strings.Join(heads, "; "))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// heads describes every node's head, and says whether they are one, with
// nothing pending and no sync.
func (c *cluster) heads() ([]string, bool) {
	var heads []string
	first := ""
	same := true
	for _, m := range c.all() {
		st, err := m.node().Status()
		if err != nil {
			heads = append(heads, fmt.Sprintf("node %d: %v", m.k, err))
			same = false
			continue
		}
		heads = append(heads, fmt.Sprintf("node %d #%d %.8s", m.k, st.Height, st.Head))
		if first == "" {
			first = st.Head
		}
		same = same && st.Pending == 0 && len(st.Syncing) == 0 && st.Head == first
	}
	return heads, same
}

// stop ends every node as Ctrl-C does (frozen ones resumed first), all
// at once; Stop kills what does not exit.
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, m := range c.all() {
		if n := m.node(); n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.Stop() }()
		}
	}
	wg.Wait()
}

// sleep waits for d, or less if ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

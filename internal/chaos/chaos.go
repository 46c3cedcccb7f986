// Package chaos runs a cluster of real gossipchain node processes under a
// seeded schedule of faults while lines are typed on random nodes, then
// checks, as a Jepsen checker does, what every node ended with. The
// gossipchain chaos command is a thin wrapper around Run.
package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"gossipchain/ledger"
)

// Options describe a run.
type Options struct {
	Bin      string        // the gossipchain binary the nodes run
	Seed     uint64        // of the fault schedule
	Duration time.Duration // of typing and faults
	Nodes    int           // started at first; late joiners come on top
	Rate     int           // lines typed per second, over all nodes
	// Dir holds the nodes' data, consoles and logs; "" is a new temporary
	// one, removed after a run that passes.
	Dir string
}

// Run starts the cluster, types and runs the schedule for the duration,
// heals everything, waits for one head and checks every chain. It writes
// the schedule, progress and a one-line verdict to out, and returns an
// error on any violation (starting "FAIL: ", naming it) or failure to
// run.
func Run(ctx context.Context, o Options, out io.Writer) error {
	dir, keep := o.Dir, o.Dir != ""
	var err error
	if !keep {
		if dir, err = os.MkdirTemp("", "gossipchain-chaos-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := &cluster{bin: o.Bin, dir: dir, log: out, start: time.Now()}
	defer c.stop()
	schedule := Schedule(o.Seed, o.Nodes, o.Duration)
	fmt.Fprintf(out, "chaos: seed %d, %d nodes, %v, %d lines/s; data in %s; schedule:\n", o.Seed, o.Nodes, o.Duration, o.Rate, dir)
	for _, f := range schedule {
		fmt.Fprintf(out, "  %s\n", f)
	}
	if err := form(ctx, c, o.Nodes); err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted (seed %d; logs in %s)", o.Seed, dir)
		}
		return fmt.Errorf("FAIL: %s (seed %d; logs in %s)", fmt.Sprintf(format, args...), o.Seed, dir)
	}
	t := newTypist(o.Seed, c)
	lastFault, err := perturb(ctx, c, t, schedule, o)
	if err != nil {
		return fail("%v", err)
	}
	if lastFault.IsZero() {
		lastFault = time.Now()
	}
	acked, unacked := t.counts()
	c.logf("typing stopped: %d lines acknowledged, %d not; waiting for one head", acked, unacked)
	took, err := c.converge(ctx, 120*time.Second)
	converged := time.Now()
	if err != nil {
		return fail("%v", err)
	}
	v, err := checkCluster(c, t)
	switch {
	case err != nil:
		return fail("reading the chains: %v", err)
	case v.violation != "":
		return fail("%s", v.violation)
	}
	fmt.Fprintf(out, "chaos: ok: seed %d, %d nodes, %d faults in %v; %d lines acknowledged, all on the chain once (%d unanswered, %d of them landed); height %d on every node; converged %.1fs after typing stopped, %.1fs after the last fault\n",
		o.Seed, len(c.all()), len(schedule), o.Duration, acked, unacked, v.landed, v.height, took.Seconds(), converged.Sub(lastFault).Seconds())
	c.stop()
	if !keep {
		os.RemoveAll(dir)
	}
	return nil
}

// form starts the first n nodes, each peered with one before it, and
// waits until they agree.
func form(ctx context.Context, c *cluster, n int) error {
	for range n {
		if err := c.add(); err != nil {
			return err
		}
	}
	if _, err := c.converge(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("the cluster did not form: %v", err)
	}
	return nil
}

// perturb types lines for the run's duration while the schedule's faults
// run, one after another, and returns when typing stopped, with the time
// the last fault ended (zero if there was none).
func perturb(ctx context.Context, c *cluster, t *typist, schedule []Fault, o Options) (time.Time, error) {
	c.start = time.Now()
	c.logf("%d nodes up; typing and faults start", o.Nodes)
	stop := make(chan struct{})
	typed := make(chan struct{})
	go func() { t.typeLines(o.Rate, stop); close(typed) }()
	defer func() { close(stop); <-typed }()
	var lastFault time.Time
	for _, f := range schedule {
		if err := sleep(ctx, time.Until(c.start.Add(f.At))); err != nil {
			return lastFault, err
		}
		if err := c.runFault(ctx, f); err != nil {
			return lastFault, err
		}
		lastFault = time.Now()
	}
	return lastFault, sleep(ctx, time.Until(c.start.Add(o.Duration)))
}

// checkCluster reads every node's chain and checks them.
func checkCluster(c *cluster, t *typist) (verdict, error) {
	var chains [][]ledger.Block
	for _, m := range c.all() {
		chain, err := m.node().Chain()
		if err != nil {
			return verdict{}, fmt.Errorf("node %d: %w", m.k, err)
		}
		chains = append(chains, chain)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return check(chains, t.acked, t.unack), nil
}

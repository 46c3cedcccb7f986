package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gossipchain/internal/chaos"
)

const chaosUsage = `usage: gossipchain chaos [--seed S] [--duration SECONDS] [--nodes N] [--rate LINES_PER_S] [--dir DIR]

Starts N node processes of this binary on loopback (free ports, data in DIR,
a new temporary directory by default), types lines on random nodes through
their APIs for the duration while a schedule of faults drawn from the seed
runs, one after another: a node SIGKILLed and restarted, a node frozen
(SIGSTOP) and resumed, the network cut in two (each side blocks the other's
peers: POST /peers/blocked) and healed, a late joiner. Then it heals
everything, waits until the nodes converge, and checks every node's chain:
one head everywhere, every block linked, hashed and signed, no block twice,
every acknowledged line exactly once and no line twice. It prints the
schedule (the same seed gives the same one), a one-line verdict, and exits
1 on any violation, naming it. A line whose POST got no answer (its node
was killed) may be absent; an acknowledged one never is.

About one cut in four is long (20-40 s): longer than the settle time (10 s)
and, on a side that types enough, than the finality depth (64 blocks). The
halves must merge on heal like after a short cut: the members' branch wins
at any depth, and the lines it displaced are appended again.

Flags:
`

// chaosCmd is gossipchain chaos: its flags, then internal/chaos.Run on
// this binary.
func chaosCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	o, err := chaosFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.Bin, err = os.Executable(); err != nil {
		return fmt.Errorf("chaos: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := chaos.Run(ctx, o, stdout); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

func chaosFlags(args []string, stderr io.Writer) (chaos.Options, error) {
	o := chaos.Options{}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.Uint64Var(&o.Seed, "seed", uint64(time.Now().UnixNano()%1_000_000), "seed of the fault schedule")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "how long lines are typed and faults run (e.g. 60s)")
	fs.IntVar(&o.Nodes, "nodes", 5, "nodes to start (late joiners come on top)")
	fs.IntVar(&o.Rate, "rate", 8, "lines typed per second, over all nodes")
	fs.StringVar(&o.Dir, "dir", "", "directory for the nodes' data and logs (default: a new temporary one, removed after a run that passes)")
	if err := parseFlags(fs, args, chaosUsage, "gossipchain chaos --help", stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("chaos: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("chaos: unexpected argument %q (see gossipchain chaos --help)", fs.Arg(0))
	case o.Nodes < 2 || o.Nodes > 50:
		return o, fmt.Errorf("chaos: --nodes %d: want 2 to 50", o.Nodes)
	case o.Duration < 5*time.Second || o.Duration > time.Hour:
		return o, fmt.Errorf("chaos: --duration %v: want 5s to 1h", o.Duration)
	case o.Rate < 1 || o.Rate > 50:
		return o, fmt.Errorf("chaos: --rate %d: want 1 to 50 lines/s", o.Rate)
	}
	return o, nil
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"gossipchain/node"
)

// console turns stdin lines into blocks and prints what arrives.
type console struct {
	node *node.Node
	mu   sync.Mutex // serialises writes to out
	out  io.Writer
	// tty is set when out is a terminal: sync progress is then one bar
	// redrawn in place instead of a line per report.
	tty bool
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

// follow prints what happens to the node, from its events, until it stops
// following: blocks that arrive by gossip, syncs, re-appended lines,
// losing the last peer and getting one back. Lines typed here are
// reported by acknowledge instead, once stored. The events queued since
// the last write go out in one write: in a burst, one per batch instead of
// one per block.
func (c *console) follow(f *node.Follower) {
	var buf strings.Builder
	for events := f.Next(); events != nil; events = f.Next() {
		buf.Reset()
		for _, e := range events {
			buf.WriteString(c.eventText(e))
		}
		if buf.Len() > 0 {
			c.printf("%s", buf.String())
		}
	}
}

// eventText is what the console prints for e, "" for nothing.
func (c *console) eventText(e node.Event) string {
	switch e.Type {
	case "block":
		if e.Origin == node.OriginGossip {
			return "< " + blockLine(e.Block) + "\n"
		}
	case "sync":
		return c.synced(*e.Sync)
	case "reappend":
		return fmt.Sprintf("> #%d %s re-added (its earlier block lost a fork): %s\n", e.Block.Index, e.Block.Short(), e.Block.Data)
	case "alone":
		if e.Alone {
			return "! no peer connected: lines typed now are kept here and reach the others when a peer returns\n"
		}
		return "~ connected to a peer again\n"
	case "refused":
		return refusedText(*e.Refused)
	case "reachability":
		return reachabilityText(e.Reachability)
	}
	return ""
}

// reachabilityText reports what the node's peers found out about dialling
// it.
func reachabilityText(r string) string {
	switch r {
	case node.ReachabilityPublic:
		return "~ reachable: peers can dial this node (it relays for nodes behind NAT)\n"
	case node.ReachabilityPrivate:
		return "~ behind NAT: peers reach this node through a relay, then directly by hole punching\n"
	}
	return ""
}

// refusedText reports, once per fork, a peer's branch this node will not
// adopt.
func refusedText(r node.RefusedBranch) string {
	return fmt.Sprintf("! not adopting the branch of peer %s (#%d): it forks at #%d, would replace %d settled blocks here, and only %d of its %d blocks are by this network's members; the network stays split (GET /status: refused_branches; README: Splits)\n",
		shortID(r.Peer), r.Height, r.ForkHeight, r.Replace, r.Members, r.Blocks)
}

// synced reports a sync's progress and its end: on a terminal, one bar
// redrawn in place.
func (c *console) synced(p node.SyncProgress) string {
	from := shortID(p.Peer.String())
	if p.Done {
		clear := ""
		if c.tty {
			clear = "\r\033[K"
		}
		return fmt.Sprintf("%s~ synced %d blocks from %s in %s, now at #%d\n", clear, p.Height-p.From, from, p.Elapsed.Round(time.Millisecond), p.Height)
	}
	done, total := p.Height-p.From, max(p.Target-p.From, 1)
	if !c.tty {
		return fmt.Sprintf("~ syncing from %s: %d/%d blocks (#%d of #%d)\n", from, done, total, p.Height, p.Target)
	}
	const width = 30
	fill := int(min(done*width/total, width))
	return fmt.Sprintf("\r~ syncing from %s [%s%s] %d/%d blocks", from, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
}

// read handles stdin until it ends; end of input leaves the node running.
// Lines are posted one after another without waiting for the disk (a file
// piped in goes at the node's pace, not one fsync per line); each is
// acknowledged, in order, once it is stored. A command waits for the
// acknowledgements before it, so the output keeps the input's order.
func (c *console) read(ctx context.Context, in io.Reader) {
	acks := make(chan ack, 256) // lines in flight at most
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range acks {
			c.acknowledge(a)
		}
	}()
	defer func() { close(acks); <-done }()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "/") {
			reached := make(chan struct{})
			acks <- ack{reached: reached}
			<-reached
			c.command(line)
			continue
		}
		r, err := c.node.Post(ctx, line)
		if err != nil {
			acks <- ack{text: fmt.Sprintf("! not added: %v\n", err)}
			continue
		}
		acks <- ack{receipt: r}
	}
	if err := sc.Err(); err != nil {
		acks <- ack{text: fmt.Sprintf("! console input: %v\n", err)}
	}
}

// ack is what the console owes the user for one input line, in order: a
// posted line's receipt to report once stored, a text to print, or a mark
// to close once everything before it is out.
type ack struct {
	receipt *node.Receipt
	text    string
	reached chan struct{}
}

func (c *console) acknowledge(a ack) {
	switch {
	case a.reached != nil:
		close(a.reached)
		return
	case a.receipt == nil:
		c.printf("%s", a.text)
		return
	}
	p, err := a.receipt.Wait()
	switch {
	case p.Block == nil:
		c.printf("! not added: %v\n", err)
	case err != nil:
		c.printf("> #%d %s added, but publishing failed: %v\n", p.Block.Index, p.Block.Short(), err)
	case p.TopicPeers == 0:
		c.printf("> #%d %s added (no peers yet: kept locally)\n", p.Block.Index, p.Block.Short())
	default:
		c.printf("> #%d %s added, sent to %d peers\n", p.Block.Index, p.Block.Short(), p.TopicPeers)
	}
}

func (c *console) command(line string) {
	fields := strings.Fields(line)
	switch fields[0] {
	case "/help":
		c.printf("Type a line to add it as a block. Commands:\n" +
			"  /id        this node's peer ID and address\n" +
			"  /peers     connected peers\n" +
			"  /chain [n] the last n blocks of the main chain (default 10)\n" +
			"  /help      this list\n")
	case "/id":
		c.printf("%s\n%s\n", c.node.ID(), c.node.Addr())
	case "/peers":
		peers := c.node.Peers()
		c.printf("%d peers\n", len(peers))
		for _, p := range peers {
			agent := p.Agent
			if agent == "" {
				agent = "agent?"
			}
			var conns []string
			for _, ci := range p.Conns {
				kind := ci.Kind
				if ci.HolePunched {
					kind = "hole-punched"
				}
				conns = append(conns, fmt.Sprintf("%s/%s %s", kind, ci.Transport, ci.Addr))
			}
			c.printf("  %s %s mesh=%v %s %s\n", p.ID, p.Direction, p.Mesh, agent, strings.Join(conns, " "))
		}
	case "/chain":
		n := 10
		if len(fields) > 1 {
			v, err := strconv.Atoi(fields[1])
			if err != nil || v < 1 {
				c.printf("! usage: /chain [n], n a positive number\n")
				return
			}
			n = v
		}
		head := c.node.Chain().Height()
		from := uint64(0)
		if head+1 > uint64(n) {
			from = head + 1 - uint64(n)
		}
		blocks, err := c.node.Chain().Range(from, n)
		if err != nil {
			c.printf("! %v\n", err)
			return
		}
		for _, b := range blocks {
			c.printf("  %s\n", blockLine(b))
		}
	default:
		c.printf("! unknown command %s (try /help)\n", fields[0])
	}
}

package main

// gossipchain trace: how one block spread through a set of nodes, drawn as
// a tree from its author, from each node's GET /blocks/{id}/trace.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// traceNode is one node's part of a spread.
type traceNode struct {
	name  string
	url   string
	id    string
	trace *protocol.Trace
	err   string
	kids  []*traceNode
	hop   int
}

const traceUsage = `usage: gossipchain trace --api [NAME=]URL [--api ...] BLOCK

Asks each node's HTTP API for its trace of BLOCK (a main-chain index or a
block hash) and prints how the block spread: a tree from its author, each
node under the one it first got the block from, with the time after the
block's timestamp, the hops from the author, the path and the duplicates;
then a summary. An API token, if needed, comes from $GOSSIPCHAIN_API_TOKEN.
`

func traceCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var apis []string
	fs.Func("api", "a node's API, NAME=URL or URL (repeat)", func(v string) error { apis = append(apis, v); return nil })
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, traceUsage)
			return err
		}
		return fmt.Errorf("trace: %v (see gossipchain trace --help)", err)
	}
	if fs.NArg() != 1 || len(apis) == 0 {
		return fmt.Errorf("trace: give at least one --api and one block (index or hash); see gossipchain trace --help")
	}
	block := fs.Arg(0)
	if !ledger.IsHash(block) && strings.Trim(block, "0123456789") != "" {
		return fmt.Errorf("trace: block %q is neither an index nor a 64-hex-digit hash", block)
	}
	var nodes []*traceNode
	for i, a := range apis {
		name, url, ok := strings.Cut(a, "=")
		if !ok {
			name, url = fmt.Sprint(i+1), a
		}
		if !strings.Contains(url, "://") {
			url = "http://" + url
		}
		nodes = append(nodes, &traceNode{name: name, url: strings.TrimRight(url, "/")})
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string, v any) error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if tok := os.Getenv("GOSSIPCHAIN_API_TOKEN"); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			var e struct{ Error string }
			if json.Unmarshal(body, &e) == nil && e.Error != "" {
				return errors.New(e.Error)
			}
			return fmt.Errorf("%s", resp.Status)
		}
		return json.Unmarshal(body, v)
	}
	// An index names a block on one node's main chain: the first node
	// that has it decides which, and every node is asked by hash.
	hash := block
	for _, n := range nodes {
		var st struct{ ID string }
		if err := get(n.url+"/status", &st); err != nil {
			n.err = err.Error()
			continue
		}
		n.id = st.ID
		if !ledger.IsHash(hash) {
			var b ledger.Block
			if err := get(n.url+"/blocks/"+block, &b); err == nil {
				hash = b.Hash
			}
		}
	}
	if !ledger.IsHash(hash) {
		return fmt.Errorf("trace: no node has a block at index %s", block)
	}
	for _, n := range nodes {
		if n.err != "" {
			continue
		}
		var t protocol.Trace
		if err := get(n.url+"/blocks/"+hash+"/trace", &t); err != nil {
			n.err = err.Error()
			continue
		}
		n.trace = &t
	}
	printSpread(stdout, hash, nodes)
	return nil
}

// printSpread draws the tree and the summary line.
func printSpread(w io.Writer, hash string, nodes []*traceNode) {
	byID := map[string]*traceNode{}
	for _, n := range nodes {
		if n.id != "" {
			byID[n.id] = n
		}
	}
	var roots, missing []*traceNode
	var first *protocol.Trace
	for _, n := range nodes {
		switch {
		case n.trace == nil:
			missing = append(missing, n)
		case n.trace.From == "":
			roots = append(roots, n)
		case byID[n.trace.From] != nil && byID[n.trace.From].trace != nil:
			p := byID[n.trace.From]
			p.kids = append(p.kids, n)
		default:
			roots = append(roots, n) // from a peer outside this set
		}
		if n.trace != nil && first == nil {
			first = n.trace
		}
	}
	if first == nil {
		fmt.Fprintf(w, "block %s: no node has a trace of it\n", short(hash))
		for _, n := range missing {
			fmt.Fprintf(w, "  node %s: %s\n", n.name, n.err)
		}
		return
	}
	fmt.Fprintf(w, "block %d %s by %s\n", first.Index, short(hash), shortID(first.Author))
	sort.SliceStable(roots, func(i, j int) bool { return roots[i].trace.From == "" && roots[j].trace.From != "" })
	reached, dups, deepest := 0, 0, 0
	var last float64
	var walk func(n *traceNode, prefix, branch string, hop int)
	walk = func(n *traceNode, prefix, branch string, hop int) {
		t := n.trace
		reached++
		dups += t.Duplicates
		deepest = max(deepest, hop)
		last = max(last, t.DelayMS)
		how := "typed here"
		switch {
		case t.From != "" && byID[t.From] == nil:
			how = fmt.Sprintf("from %s (not traced) via %s", shortID(t.From), t.Via)
		case t.From != "":
			how = "via " + t.Via
		}
		fmt.Fprintf(w, "%s%snode %-3s %s  +%.1f ms  hop %d  %s  %d dup\n", prefix, branch, n.name, shortID(n.id), t.DelayMS, hop, how, t.Duplicates)
		sort.Slice(n.kids, func(i, j int) bool { return n.kids[i].trace.DelayMS < n.kids[j].trace.DelayMS })
		next := prefix
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range n.kids {
			b := "├─ "
			if i == len(n.kids)-1 {
				b = "└─ "
			}
			walk(k, next, b, hop+1)
		}
	}
	for _, r := range roots {
		hop := 0
		if r.trace.From != "" {
			hop = 1 // at least one hop from an author outside the set
		}
		walk(r, "", "", hop)
	}
	for _, n := range missing {
		fmt.Fprintf(w, "node %-3s %s  no trace: %s\n", n.name, shortID(n.id), n.err)
	}
	fmt.Fprintf(w, "reached %d of %d nodes in %.1f ms; %.1f duplicates per node; deepest hop %d\n",
		reached, len(nodes), last, float64(dups)/float64(max(1, reached)), deepest)
}

func short(hash string) string { return hash[:min(len(hash), 8)] }

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

Flags:
`

func traceCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	nodes, block, err := traceFlags(args, stderr)
	if err != nil {
		return err
	}
	c := apiClient{http: &http.Client{Timeout: 5 * time.Second}, token: os.Getenv("GOSSIPCHAIN_API_TOKEN")}
	hash := c.resolve(nodes, block)
	if !ledger.IsHash(hash) {
		return fmt.Errorf("trace: no node has a block at index %s", block)
	}
	for _, n := range nodes {
		if n.err != "" {
			continue
		}
		var t protocol.Trace
		if err := c.get(n.url+"/blocks/"+hash+"/trace", &t); err != nil {
			n.err = err.Error()
			continue
		}
		n.trace = &t
	}
	printSpread(stdout, hash, nodes)
	return nil
}

// traceFlags reads the nodes to ask and the block.
func traceFlags(args []string, stderr io.Writer) ([]*traceNode, string, error) {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	var apis []string
	fs.Func("api", "a node's API, NAME=URL or URL (repeat)", func(v string) error { apis = append(apis, v); return nil })
	if err := parseFlags(fs, args, traceUsage, "gossipchain trace --help", stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("trace: %w", err)
	}
	if fs.NArg() != 1 || len(apis) == 0 {
		return nil, "", fmt.Errorf("trace: give at least one --api and one block (index or hash); see gossipchain trace --help")
	}
	block := fs.Arg(0)
	if !ledger.IsHash(block) && strings.Trim(block, "0123456789") != "" {
		return nil, "", fmt.Errorf("trace: block %q is neither an index nor a 64-hex-digit hash", block)
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
	return nodes, block, nil
}

// apiClient asks nodes' APIs, with their token if there is one.
type apiClient struct {
	http  *http.Client
	token string
}

// get reads url's JSON into v; an error answer's message is the error.
func (c apiClient) get(url string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
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

// resolve learns each node's peer ID (or why it can't be asked) and
// turns block into a hash. An index names a block on one node's main
// chain: the first node that has it decides which, and every node is
// asked by hash.
func (c apiClient) resolve(nodes []*traceNode, block string) string {
	hash := block
	for _, n := range nodes {
		var st struct{ ID string }
		if err := c.get(n.url+"/status", &st); err != nil {
			n.err = err.Error()
			continue
		}
		n.id = st.ID
		if !ledger.IsHash(hash) {
			var b ledger.Block
			if err := c.get(n.url+"/blocks/"+block, &b); err == nil {
				hash = b.Hash
			}
		}
	}
	return hash
}

// printSpread draws the tree and the summary line.
func printSpread(w io.Writer, hash string, nodes []*traceNode) {
	byID, roots, missing, first := spreadTree(nodes)
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

// spreadTree hangs each node that has a trace under the node it first got
// the block from; roots are the author and nodes that got it from outside
// the set, missing those without a trace, first the first trace found.
func spreadTree(nodes []*traceNode) (byID map[string]*traceNode, roots, missing []*traceNode, first *protocol.Trace) {
	byID = map[string]*traceNode{}
	for _, n := range nodes {
		if n.id != "" {
			byID[n.id] = n
		}
	}
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
	return byID, roots, missing, first
}

func short(hash string) string { return hash[:min(len(hash), 8)] }

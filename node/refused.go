package node

import (
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
)

// Refused branches. A peer whose branch would replace settled history and
// is not the members' (ledger/deepfork.go) stays on its own chain while
// this node stays on its own: the network is split although every link is
// up. The node says so plainly: GET /status lists the branches it refuses
// now (RefusedBranch), a metric counts them, and an event (the console's
// one line, the dashboard's banner) announces each branch once, by the
// block where it forks.

// RefusedBranch is a peer's branch this node will not adopt (GET /status
// "refused_branches").
type RefusedBranch struct {
	Peer   string `json:"peer"`
	Head   string `json:"head"`   // the branch's tip
	Height uint64 `json:"height"` // its height
	// ForkHeight and ForkHash name the last block both chains share;
	// Replace is how many blocks of this node's main chain the branch
	// would replace.
	ForkHeight uint64 `json:"fork_height"`
	ForkHash   string `json:"fork_hash"`
	Replace    int    `json:"replace"`
	// Blocks is how many blocks the branch adds since the fork, Members
	// how many of those are by members (authors of the shared history):
	// a branch is adopted when more than half are.
	Blocks  int `json:"blocks"`
	Members int `json:"members"`
}

// maxAnnounced bounds the forks remembered as announced.
const maxAnnounced = 256

// refusals holds the refused branches, by peer.
type refusals struct {
	mu        sync.Mutex // guards the fields below
	byPeer    map[peer.ID]RefusedBranch
	announced []string // fork hashes already announced, oldest first
}

// refusedBranch records that p's branch was refused with err (from the
// gossip validator or a sync), and announces it if its fork is new.
func (n *Node) refusedBranch(p peer.ID, err error) {
	rb, ok := ledger.Refused(err)
	if !ok {
		return
	}
	r := RefusedBranch{Peer: p.String(), Head: rb.Head.Hash, Height: rb.Head.Index, ForkHeight: rb.ForkHeight, ForkHash: rb.ForkHash, Replace: rb.Replace, Blocks: rb.Blocks, Members: rb.Members}
	rf := &n.refusals
	rf.mu.Lock()
	if rf.byPeer == nil {
		rf.byPeer = map[peer.ID]RefusedBranch{}
	}
	rf.byPeer[p] = r
	news := !slices.Contains(rf.announced, r.ForkHash)
	if news {
		if len(rf.announced) >= maxAnnounced {
			rf.announced = rf.announced[1:]
		}
		rf.announced = append(rf.announced, r.ForkHash)
	}
	rf.mu.Unlock()
	if news {
		n.log.Warn("refusing a peer's branch: it would replace settled history and is not the members'",
			"peer", p, "height", r.Height, "fork", r.ForkHeight, "replace", r.Replace, "members", r.Members, "blocks", r.Blocks)
		n.events.publish(Event{Type: "refused", Refused: &r})
	}
}

// RefusedBranches returns the branches this node refuses now: of peers
// still connected, whose head it has not adopted since. Never nil.
func (n *Node) RefusedBranches() []RefusedBranch {
	rf := &n.refusals
	rf.mu.Lock()
	defer rf.mu.Unlock()
	out := []RefusedBranch{}
	for p, r := range rf.byPeer {
		if n.host.Network().Connectedness(p) != network.Connected || n.chain.Has(r.Head) {
			delete(rf.byPeer, p)
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RefusedBranch) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

package node

import "gossipchain/node/chainsync"

// SyncProgress is a sync's progress, as GET /status, the "sync" events and
// the console report it.
type SyncProgress = chainsync.Progress

// Status is the body of GET /status.
type Status struct {
	ID     string            `json:"id"`
	Addrs  []string          `json:"addrs"`
	Height uint64            `json:"height"`
	Head   string            `json:"head"`
	Peers  int               `json:"peers"`
	Mesh   int               `json:"mesh"`
	Drops  map[string]uint64 `json:"drops"`
	// Pending counts lines typed here waiting to be appended again after a
	// reorg; Syncing is set while blocks are fetched from a peer.
	Pending int `json:"pending"`
	// Alone is set when every peer this node had is gone: blocks added
	// now reach the others when one returns.
	Alone bool `json:"alone"`
	// Reachability is whether peers can dial this node: public, private
	// (behind NAT: peers reach it through a relay, then by hole punching)
	// or unknown (reach.go).
	Reachability string        `json:"reachability"`
	Syncing      *SyncProgress `json:"syncing,omitempty"`
	// RefusedBranches are peers' branches this node will not adopt: the
	// network is split although connected (refused.go).
	RefusedBranches []RefusedBranch `json:"refused_branches"`
	// Propagation is the delay (arrival minus block timestamp) of the
	// last propagationBlocks blocks that came from other nodes.
	Propagation Propagation `json:"propagation"`
}

// propagationBlocks is how many recent arrivals Status.Propagation covers.
const propagationBlocks = 100

// Status returns what GET /status reports.
func (n *Node) Status() Status {
	head := n.chain.Head()
	s := Status{
		ID:           n.ID().String(),
		Height:       head.Index,
		Head:         head.Hash,
		Peers:        len(n.host.Network().Peers()),
		Mesh:         n.MeshPeers(),
		Drops:        n.Drops(),
		Addrs:        []string{},
		Pending:      n.chain.PendingLines(),
		Alone:        n.alone.Load(),
		Reachability: n.reach.name(),
		Syncing:      n.sync.Progress(),

		RefusedBranches: n.RefusedBranches(),

		Propagation: n.traces.propagation(propagationBlocks),
	}
	for _, a := range n.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	return s
}

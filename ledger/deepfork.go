package ledger

import (
	"errors"
	"fmt"
	"slices"
)

// Deep forks. Two parts of a network that were split for longer than the
// settle time, each typing more than the finality depth, hold branches that
// replace each other's settled history. Refusing every such branch keeps an
// outsider from rewriting history with a long fabricated one, and keeps
// honest halves apart for good. The rule that tells them apart, computed
// the same way by every node that holds the two branches:
//
// The members of the network at a fork are the authors of the last
// MemberWindow blocks of the history both branches share (up to and
// including the fork block). A better branch that would replace settled
// blocks deeper than the finality depth is adopted when more than half of
// the blocks it adds since the fork are by members; otherwise it is refused
// (ErrTooDeep). On a network with an authors list every block is by a
// listed author, a member by definition: such branches are always adopted.
//
// Lines typed on this node whose blocks the deep switch takes off the main
// chain are pending, as after any reorg, and are appended again on the new
// head: nothing acknowledged is lost, only its place in the order changes.
// See docs/SECURITY.md for what the rule does and does not stop.

// MemberWindow is how many blocks of shared history, below and at a fork,
// name the members who may move settled history (see above).
const MemberWindow = 1024

// RefusedBranch describes a branch refused because it would replace
// settled history and is not the members' (ErrTooDeep).
type RefusedBranch struct {
	Head       *Block // the branch's tip
	ForkHeight uint64 // the highest block both branches share
	ForkHash   string
	Replace    int // main-chain blocks it would replace
	Blocks     int // blocks it adds since the fork
	Members    int // of those, by members
}

// Refused returns the branch an ErrTooDeep error refused, if err is one.
func Refused(err error) (*RefusedBranch, bool) {
	var re RuleError
	if errors.As(err, &re) && re.Code == ErrTooDeep && re.branch != nil {
		return re.branch, true
	}
	return nil, false
}

// deepFork decides on a better branch to tip that would replace replace
// settled main-chain blocks, more than the finality depth: nil to adopt it
// (its lines records loaded, so that every line of this node's it takes
// off the main chain is pending), ErrTooDeep to refuse it. branch is the
// branch's hashes above fork; pending, the blocks being committed (not yet
// readable through r). c.mu is held.
func (c *Chain) deepFork(r *reader, tip *Block, fork uint64, branch []string, pending []*Block, replace int) error {
	members, total, err := c.memberBlocks(r, fork, branch, pending)
	if err != nil {
		return err
	}
	if c.authors == nil && 2*members <= total {
		forkHash, err := r.mainAt(fork)
		if err != nil {
			return err
		}
		return RuleError{
			Code: ErrTooDeep,
			Description: fmt.Sprintf("branch to block %d %s forks at height %d: it would replace %d settled blocks (finality depth %d), and %d of its %d blocks are by members",
				tip.Index, tip.Short(), fork, replace, c.finality, members, total),
			branch: &RefusedBranch{Head: tip, ForkHeight: fork, ForkHash: forkHash, Replace: replace, Blocks: total, Members: members},
		}
	}
	return c.recallLines(r, fork+1)
}

// memberBlocks counts the blocks of branch (above fork) and those by
// members (authors of the last MemberWindow blocks up to fork).
func (c *Chain) memberBlocks(r *reader, fork uint64, branch []string, pending []*Block) (members, total int, err error) {
	if c.authors != nil {
		return len(branch), len(branch), nil
	}
	known := map[string]bool{}
	if fork > 0 {
		from := max(1, fork+1-min(fork, MemberWindow))
		hashes, err := r.mainRange(from, int(fork-from+1))
		if err != nil {
			return 0, 0, err
		}
		for i, h := range hashes {
			b, err := r.block(from+uint64(i), h)
			if err != nil {
				return 0, 0, err
			}
			known[b.Author] = true
		}
	}
	byHash := make(map[string]*Block, len(pending))
	for _, b := range pending {
		byHash[b.Hash] = b
	}
	for i, h := range branch {
		b, ok := byHash[h]
		if !ok {
			if b, err = r.block(fork+1+uint64(i), h); err != nil {
				return 0, 0, err
			}
		}
		if known[b.Author] {
			members++
		}
	}
	return members, len(branch), nil
}

// recallLines loads the line records of this node's blocks from height from
// up that memory forgot (settled and deeper than the finality depth: no
// reorg could reach them until a deep fork is adopted). c.mu is held.
func (c *Chain) recallLines(r *reader, from uint64) error {
	tx, err := r.txn()
	if err != nil {
		return err
	}
	if err := c.lines.loadRecords(tx, from); err != nil {
		return err
	}
	slices.SortStableFunc(c.lines.order, func(a, b lineBlock) int { return compareHeight(a.height, b.height) })
	return nil
}

func compareHeight(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

package node

import (
	"math/rand/v2"
	"time"

	"gossipchain/protocol"
)

// Lines typed here whose blocks a reorg took off the main chain are signed
// again on the new head after a short, jittered pause: it lets a burst of
// competing blocks settle, and keeps nodes that lost the same race from
// re-appending in lockstep and racing again.
const (
	reappendDelay  = 50 * time.Millisecond
	reappendJitter = 150 * time.Millisecond
)

// wakeReappend asks the re-append loop to look for pending lines.
func (n *Node) wakeReappend() {
	if n.chain.PendingLines() == 0 {
		return
	}
	select {
	case n.reappend <- struct{}{}:
	default:
	}
}

// reappendLoop appends pending lines again once no sync is running (the end
// of a sync wakes it again) and publishes them.
func (n *Node) reappendLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.reappend:
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(reappendDelay + rand.N(reappendJitter)):
		}
		if n.sync.Busy() {
			continue
		}
		res, err := n.chain.Reappend(n.signer, protocol.MaxReappendBatch)
		if err != nil {
			n.log.Error("re-append pending lines", "err", err)
			continue
		}
		if n.chain.PendingLines() > 0 {
			n.wakeReappend() // the next batch
		}
		n.changed(change{res: res, origin: OriginLocal})
		if len(res.Added) > 0 {
			n.log.Info("lines re-appended after a reorg", "count", len(res.Added), "head", res.Head.Index)
		}
		for _, b := range res.Added {
			if err := n.publish(n.ctx, b); err != nil && n.ctx.Err() == nil {
				n.log.Warn("publish re-appended block", "index", b.Index, "err", err)
			}
		}
		if err := res.Wait(); err != nil {
			n.log.Error("store re-appended lines", "err", err)
			continue
		}
		for _, b := range res.Added {
			n.events.publish(Event{Type: "reappend", Block: b})
		}
	}
}

package node

import (
	"context"
	"errors"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// drainBlocks reads accepted blocks promptly, so the subscription never
// backs up. It has nothing to do with them: the validator stored them, and
// their arrival was announced then (chainchange.go).
func (n *Node) drainBlocks() {
	defer n.wg.Done()
	for {
		if _, err := n.sub.Next(n.ctx); err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				n.log.Error("block subscription ended", "err", err)
			}
			return
		}
	}
}

// relayConnected publishes stored blocks that peers may not have had from
// this node: orphans connected since they arrived (they were ignored then)
// and the head reached by a sync, so peers behind this node receive them.
func (n *Node) relayConnected() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.republish:
			if err := n.publish(n.ctx, b); err != nil && n.ctx.Err() == nil {
				n.log.Warn("relay stored block", "index", b.Index, "err", err)
			}
		}
	}
}

// publish sends a block this node has stored. Its own validator accepts it
// (validateOwn) without checking it again.
func (n *Node) publish(ctx context.Context, b *ledger.Block) error {
	data, err := protocol.EncodeBlock(b)
	if err != nil {
		return err
	}
	n.msgIDs.published(data, b)
	return n.topic.Publish(ctx, data, pubsub.WithValidatorData(b))
}

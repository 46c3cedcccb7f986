package node

import (
	"context"
	"errors"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// consumeBlocks reads accepted blocks promptly, so the subscription never
// backs up, and announces the ones that arrived from the network.
func (n *Node) consumeBlocks() {
	defer n.wg.Done()
	for {
		msg, err := n.sub.Next(n.ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				n.log.Error("block subscription ended", "err", err)
			}
			return
		}
		d, ok := msg.ValidatorData.(*delivery)
		if !ok || d.own {
			continue
		}
		from := msg.ReceivedFrom
		if from == n.host.ID() {
			// A connected orphan, republished by this node: whoever sent it
			// is forgotten, so name its author instead.
			from, _ = peer.Decode(d.block.Author)
		}
		n.log.Debug("block received", "index", d.block.Index, "hash", d.block.Short(), "author", d.block.Author, "from", from)
		if n.cfg.OnBlock != nil {
			n.cfg.OnBlock(d.block, from)
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
		case d := <-n.republish:
			if err := n.publishDelivery(n.ctx, d); err != nil && n.ctx.Err() == nil {
				n.log.Warn("relay stored block", "index", d.block.Index, "err", err)
			}
		}
	}
}

// publish sends a block this node appended.
func (n *Node) publish(ctx context.Context, b *ledger.Block) error {
	return n.publishDelivery(ctx, &delivery{block: b, own: true})
}

func (n *Node) publishDelivery(ctx context.Context, d *delivery) error {
	data, err := protocol.EncodeBlock(d.block)
	if err != nil {
		return err
	}
	n.msgIDs.published(data, d.block)
	return n.topic.Publish(ctx, data, pubsub.WithValidatorData(d))
}

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

// relayConnected publishes blocks that were held as orphans and have since
// been connected, so peers behind this node receive them too.
func (n *Node) relayConnected() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.republish:
			if err := n.publishDelivery(n.ctx, &delivery{block: b}); err != nil && n.ctx.Err() == nil {
				n.log.Warn("relay connected block", "index", b.Index, "err", err)
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
	return n.topic.Publish(ctx, data, pubsub.WithValidatorData(d))
}

package node

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/protocol"
)

// Copies of a block that is already on its way through validation are
// dropped before GossipSub reads them.
//
// GossipSub marks a message seen when a validation worker takes it, not
// when it arrives (it must not let a forged message squat the ID of a
// genuine one). Until then every copy from every mesh peer passes its
// duplicate check and joins the validation queue behind the first: in a
// burst on a busy machine the queue held up to seven copies of each block,
// overflowed (5,305 messages dropped unread in one 3,000-block burst on 10
// nodes), and the node asked its peers again, by IWANT, for blocks it held
// queued. Here a message ID is the block's own hash and signature
// (protocol.MessageID), so two messages with one ID are the same block and
// stand or fall together: a copy of a message this node has named can go
// without being checked. GossipSub counts duplicates for one score this
// node uses: a peer that forwards a message that turns out invalid is
// penalised as its first sender is (score.go's invalid deliveries). So the
// copies of a message GossipSub rejected go through GossipSub and cost
// their senders; a copy that arrives while the first is being checked
// (milliseconds, unless the queue is long) is dropped unpunished. The copy
// is still counted: in the metrics' duplicates and the block's trace.

// dropCopies removes from rpc the blocks this node has named already.
func (n *Node) dropCopies(from peer.ID, rpc *pubsub.RPC) {
	keep := rpc.Publish[:0]
	for _, m := range rpc.Publish {
		if m.GetTopic() == protocol.TopicBlocks {
			if id, ok := n.msgIDs.copyOf(m.GetData()); ok {
				n.traces.copyOf(id, from)
				n.metrics.earlyDuplicate.Inc()
				continue
			}
		}
		keep = append(keep, m)
	}
	clear(rpc.Publish[len(keep):])
	rpc.Publish = keep
}

// queueTracer forgets the messages GossipSub dropped unread (a full
// validation queue) or found invalid, so their next copy is read (a
// RawTracer).
type queueTracer struct {
	noTrace
	ids *messageIDs
}

func (q queueTracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		q.ids.unread(msg.GetData())
	case pubsub.RejectValidationFailed:
		q.ids.rejected(msg.GetData())
	}
}

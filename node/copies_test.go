package node

import (
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/protocol"
)

// A copy of a message this node has named is dropped before GossipSub
// reads it, and counted in the block's trace; one GossipSub dropped unread
// is read again; copies of one found invalid are read (so their senders
// are penalised too), and so are messages never seen and other topics'.
func TestCopiesDroppedEarly(t *testing.T) {
	b, data := signedMessage(t, "copied")
	n := &Node{msgIDs: newMessageIDs(newPendingBlocks()), traces: newTraceBook(nil)}
	n.metrics = newMetrics(n)
	topic := protocol.TopicBlocks
	other := "elsewhere"
	rpcOf := func(msgs ...*pb.Message) *pubsub.RPC { return &pubsub.RPC{RPC: pb.RPC{Publish: msgs}} }
	copyMsg := &pb.Message{Data: data, Topic: &topic}
	kept := func(rpc *pubsub.RPC) int { n.dropCopies("p", rpc); return len(rpc.Publish) }

	if got := kept(rpcOf(copyMsg)); got != 1 {
		t.Fatalf("a message never named: %d kept, want 1", got)
	}
	id := n.msgIDs.id(data) // GossipSub names the first copy
	first := &pubsub.Message{Message: copyMsg, ID: id}
	n.traces.gossiped(b, first, "first", &stages{named: time.Now()})
	rpc := rpcOf(copyMsg, &pb.Message{Data: []byte("new"), Topic: &topic}, &pb.Message{Data: data, Topic: &other})
	if got := kept(rpc); got != 2 || string(rpc.Publish[0].Data) != "new" {
		t.Fatalf("copy, new message, other topic: kept %d (%q first), want the last two", got, rpc.Publish[0].Data)
	}
	if tr, _ := n.traces.get(b.Hash); tr.Duplicates != 1 || len(tr.Copies) != 1 || tr.Copies[0].From != peer.ID("p").String() {
		t.Fatalf("trace %+v: want the dropped copy counted, from p", tr)
	}

	q := queueTracer{ids: n.msgIDs}
	q.RejectMessage(first, pubsub.RejectValidationIgnored) // an orphan, say: its copies are still copies
	if got := kept(rpcOf(copyMsg)); got != 0 {
		t.Fatalf("a copy of an ignored message: %d kept, want 0", got)
	}
	q.RejectMessage(first, pubsub.RejectValidationQueueFull)
	if got := kept(rpcOf(copyMsg)); got != 1 {
		t.Fatalf("a copy of a message dropped unread: %d kept, want 1", got)
	}
	n.msgIDs.id(data) // that copy is named in turn
	q.RejectMessage(first, pubsub.RejectValidationFailed)
	n.msgIDs.id(data)
	if got := kept(rpcOf(copyMsg)); got != 1 {
		t.Fatalf("a copy of an invalid message: %d kept, want 1", got)
	}
}

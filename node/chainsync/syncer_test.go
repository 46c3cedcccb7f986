package chainsync

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"gossipchain/ledger"
	"gossipchain/ledger/ledgertest"
	"gossipchain/protocol"
)

// The syncer alone, on bare hosts: a newcomer fetches a chain longer than
// one answer from a peer that has it, reports the sync and relays the head
// it reached; a peer that lies is banned, disconnected and counted; once
// closed, the syncer serves nothing and its goroutines are gone.
func TestSyncComponent(t *testing.T) {
	const count = 2*protocol.MaxBlocksPerResponse + 300
	a, b := newSyncRig(t), newSyncRig(t)
	run := ledgertest.SignRun(t, ledger.Genesis(), count)
	if _, err := a.chain.Add(run...); err != nil {
		t.Fatal(err)
	}
	b.connect(t, a.host) // the connection makes both exchange status
	waitFor(t, 30*time.Second, "b synced from a", func() bool { return b.chain.Head().Hash == a.chain.Head().Hash })
	got, err := b.chain.Range(0, count+1)
	if err != nil || len(got) != count+1 {
		t.Fatalf("b's main chain: %d blocks, %v", len(got), err)
	}
	for i, blk := range got[1:] {
		if blk.Hash != run[i].Hash {
			t.Fatalf("b's block %d is %s, a's %s", i+1, blk.Short(), run[i].Short())
		}
	}
	waitFor(t, 10*time.Second, "the sync reported done", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := len(b.reports)
		return n > 0 && b.reports[n-1].Done
	})
	b.mu.Lock()
	last := b.reports[len(b.reports)-1]
	if last.From != 0 || last.Height != count || last.Peer != a.host.ID() || b.added != count {
		t.Errorf("last report %+v, %d blocks added; want from 0 to %d from a, %d added", last, b.added, count, count)
	}
	if len(b.relayed) == 0 || b.relayed[len(b.relayed)-1].Hash != run[count-1].Hash {
		t.Errorf("relayed %d heads; want the last one to be the synced head", len(b.relayed))
	}
	b.mu.Unlock()
	if st, ok := b.s.Head(a.host.ID()); !ok || st.Head != a.chain.Head().Hash || !b.s.member(a.host.ID()) {
		t.Errorf("b's view of a: %+v %v member %v", st, ok, b.s.member(a.host.ID()))
	}

	// A liar claims a better head and answers a fetch with a block that
	// does not decode.
	liar := bareHost(t)
	liar.SetStreamHandler(protocol.SyncID, func(st network.Stream) {
		defer st.Close()
		rd := bufio.NewReader(st)
		frame, err := protocol.ReadFrame(rd, protocol.MaxSyncRequestBytes)
		if err != nil {
			st.Reset()
			return
		}
		var req protocol.Request
		if protocol.UnmarshalStrict(frame, &req) != nil {
			st.Reset()
			return
		}
		claim := protocol.Status{Genesis: ledger.Genesis().Hash, Height: count + 10, Head: "00" + run[0].Hash[2:]}
		switch req.Type {
		case protocol.RequestStatus:
			protocol.WriteJSON(st, claim)
		case protocol.RequestBlocks:
			protocol.WriteJSON(st, protocol.BlocksHeader{Count: 1, Status: claim})
			protocol.WriteFrame(st, []byte(`{"index":"not a number"}`))
		default:
			protocol.WriteJSON(st, protocol.PeersAnswer{Peers: []protocol.PeerAddrs{}})
		}
	})
	b.connect(t, liar)
	waitFor(t, 30*time.Second, "the liar counted, banned and disconnected", func() bool {
		return b.dropped("sync_garbage") > 0 && b.s.Faulty(liar.ID()) && b.host.Network().Connectedness(liar.ID()) != network.Connected
	})
	if b.chain.Head().Hash != a.chain.Head().Hash {
		t.Fatalf("b's head moved to %s after the liar", b.chain.Head().Short())
	}
	if b.s.trusted(liar.ID()) {
		t.Error("discovery would hand out the liar")
	}

	// Closed: nothing served, nothing blocks.
	b.s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := a.host.NewStream(ctx, b.host.ID(), protocol.SyncID); err == nil {
		// The protocol is negotiated with the first bytes: a request, then
		// an answer that must not come.
		me := protocol.Status{Genesis: ledger.Genesis().Hash, Head: ledger.Genesis().Hash}
		protocol.WriteJSON(st, &protocol.Request{Type: protocol.RequestStatus, Status: &me})
		st.CloseWrite()
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		if frame, err := protocol.ReadFrame(bufio.NewReader(st), protocol.MaxSyncHeaderBytes); err == nil {
			t.Fatalf("a closed syncer answered a status request: %s", frame)
		}
		st.Reset()
	}
	b.s.askStatus(a.host.ID())
	b.s.wake()
	b.s.HeadMoved()
	b.s.Close() // twice is fine
}

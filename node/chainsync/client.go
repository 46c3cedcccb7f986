package chainsync

// The client side of the sync protocol: a status exchange, block fetches,
// peers and trace requests, each on its own stream with deadlines.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// exchangeStatus tells p our status and records its own.
func (s *Syncer) exchangeStatus(p peer.ID) {
	if s.deps.Host.Network().Connectedness(p) != network.Connected {
		return
	}
	me := s.status()
	var st protocol.Status
	start := time.Now()
	err := s.call(p, &protocol.Request{Type: protocol.RequestStatus, Status: &me}, func(r *frameReader) error {
		if err := r.json(protocol.MaxSyncHeaderBytes, &st); err != nil {
			return err
		}
		if err := protocol.CheckStatus(&st); err != nil {
			return fault("garbage", "%v", err)
		}
		return nil
	})
	if err != nil {
		var f *syncFault
		if errors.As(err, &f) {
			s.failed(p, err)
		} else {
			s.deps.Log.Debug("status exchange failed", "peer", p, "err", err)
		}
		return
	}
	// One request and its answer: a round trip, for the peer list.
	s.deps.Host.Peerstore().RecordLatency(p, time.Since(start))
	s.noteHead(p, st)
}

// fetch asks p for the blocks after locator.
func (s *Syncer) fetch(p peer.ID, locator []string) ([]*ledger.Block, protocol.Status, error) {
	req := &protocol.Request{Type: protocol.RequestBlocks, Locator: locator, Limit: protocol.MaxBlocksPerResponse}
	var hdr protocol.BlocksHeader
	var blocks []*ledger.Block
	err := s.call(p, req, func(r *frameReader) error {
		if err := r.json(protocol.MaxSyncHeaderBytes, &hdr); err != nil {
			return err
		}
		if err := hdr.Check(req.Limit); err != nil {
			return fault("garbage", "%v", err)
		}
		if hdr.Error != "" {
			return fmt.Errorf("peer says: %.200s", hdr.Error)
		}
		size := 0
		for i := range hdr.Count {
			frame, err := r.frame(protocol.MaxBlockMessageBytes)
			if err != nil {
				return err
			}
			if size += len(frame); size > protocol.MaxResponseBytes+protocol.MaxBlockMessageBytes {
				return fault("oversize", "response over %d bytes", protocol.MaxResponseBytes)
			}
			b, err := protocol.DecodeBlock(frame)
			if err != nil {
				return fault("garbage", "block %d of the response: %v", i, err)
			}
			if i > 0 && (b.PrevHash != blocks[i-1].Hash || b.Index != blocks[i-1].Index+1) {
				return fault("unlinked", "block %d of the response does not follow the one before", i)
			}
			blocks = append(blocks, b)
		}
		return nil
	})
	return blocks, hdr.Status, err
}

// askPeers is discovery's way to ask p for its peers: a sync request.
func (s *Syncer) askPeers(_ context.Context, p peer.ID) (protocol.PeersAnswer, error) {
	var answer protocol.PeersAnswer
	err := s.call(p, &protocol.Request{Type: protocol.RequestPeers}, func(r *frameReader) error {
		return r.json(protocol.MaxPeersAnswerBytes, &answer)
	})
	return answer, err
}

// AskTrace asks p for its trace of the block with hash: how the block
// reached p (GET /blocks/{hash}/trace?peers=1). It gives up when ctx ends,
// after the request timeout, or when the syncer closes.
func (s *Syncer) AskTrace(ctx context.Context, p peer.ID, hash string) (protocol.TraceAnswer, error) {
	var a protocol.TraceAnswer
	err := s.callCtx(ctx, p, &protocol.Request{Type: protocol.RequestTrace, Hash: hash}, func(r *frameReader) error {
		if err := r.json(protocol.MaxTraceAnswerBytes, &a); err != nil {
			return err
		}
		if err := a.Check(hash); err != nil {
			return fault("garbage", "%v", err)
		}
		return nil
	})
	return a, err
}

// call sends req to p on a new sync stream and lets read consume the answer.
func (s *Syncer) call(p peer.ID, req *protocol.Request, read func(*frameReader) error) error {
	return s.callCtx(s.ctx, p, req, read)
}

// callCtx is call, given up when ctx ends too.
func (s *Syncer) callCtx(ctx context.Context, p peer.ID, req *protocol.Request, read func(*frameReader) error) (err error) {
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		}
		s.deps.Metrics.RequestMade(req.Type, result)
	}()
	ctx, cancel := context.WithTimeout(ctx, s.deps.Timeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // and when the syncer stops
	defer stop()
	st, err := s.deps.Host.NewStream(network.WithNoDial(ctx, "sync"), p, protocol.SyncID)
	if err != nil {
		return err
	}
	_ = st.SetWriteDeadline(time.Now().Add(s.deps.Timeout))
	if err := protocol.WriteJSON(st, req); err != nil {
		st.Reset()
		return err
	}
	// A peer may read the request, answer and close the stream before
	// this side closes its write direction (more often while this node's
	// cores check the previous answer): over QUIC its close cancels this
	// side's writing, and CloseWrite fails although the answer is there
	// to read. A stream that is broken fails the read below instead.
	_ = st.CloseWrite()
	r := bufReaders.Get().(*bufio.Reader)
	r.Reset(st)
	defer putReader(r)
	if err := read(&frameReader{st: st, r: r, timeout: s.deps.Timeout}); err != nil {
		st.Reset()
		return err
	}
	// Whatever the peer sends past what it announced is not read.
	st.Close()
	return nil
}

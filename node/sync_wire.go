package node

// The sync protocol on the wire: the client side (status exchange, block
// fetches, each on its own stream with deadlines) and the server side.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// exchangeStatus tells p our status and records its own.
func (s *syncer) exchangeStatus(p peer.ID) {
	if s.host.Network().Connectedness(p) != network.Connected {
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
			s.log.Debug("status exchange failed", "peer", p, "err", err)
		}
		return
	}
	// One request and its answer: a round trip, for the peer list.
	s.host.Peerstore().RecordLatency(p, time.Since(start))
	s.noteHead(p, st)
}

// fetch asks p for the blocks after locator.
func (s *syncer) fetch(p peer.ID, locator []string) ([]*ledger.Block, protocol.Status, error) {
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

// askTrace asks p for its trace of the block with hash.
func (s *syncer) askTrace(ctx context.Context, p peer.ID, hash string) (protocol.TraceAnswer, error) {
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
func (s *syncer) call(p peer.ID, req *protocol.Request, read func(*frameReader) error) error {
	return s.callCtx(s.ctx, p, req, read)
}

// callCtx is call, given up when ctx ends too.
func (s *syncer) callCtx(ctx context.Context, p peer.ID, req *protocol.Request, read func(*frameReader) error) (err error) {
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		}
		s.made.WithLabelValues(req.Type, result).Inc()
	}()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // and when the syncer stops
	defer stop()
	st, err := s.host.NewStream(network.WithNoDial(ctx, "sync"), p, protocol.SyncID)
	if err != nil {
		return err
	}
	_ = st.SetWriteDeadline(time.Now().Add(s.timeout))
	if err := protocol.WriteJSON(st, req); err != nil {
		st.Reset()
		return err
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return err
	}
	r := bufReaders.Get().(*bufio.Reader)
	r.Reset(st)
	defer putReader(r)
	if err := read(&frameReader{st: st, r: r, timeout: s.timeout}); err != nil {
		st.Reset()
		return err
	}
	// Whatever the peer sends past what it announced is not read.
	st.Close()
	return nil
}

// Sync streams are many and short (a head exchange is a few hundred
// bytes): their buffers are reused rather than allocated per stream.
var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriter(nil) }}
)

func putReader(r *bufio.Reader) { r.Reset(nil); bufReaders.Put(r) }
func putWriter(w *bufio.Writer) { w.Reset(nil); bufWriters.Put(w) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// frameReader reads frames from a sync stream, each within the timeout, and
// turns a stall or an oversized frame into a fault.
type frameReader struct {
	st      network.Stream
	r       *bufio.Reader
	timeout time.Duration
}

func (f *frameReader) frame(max int) ([]byte, error) {
	_ = f.st.SetReadDeadline(time.Now().Add(f.timeout))
	b, err := protocol.ReadFrame(f.r, max)
	switch {
	case isTimeout(err):
		return nil, fault("stall", "no data for %s", f.timeout)
	case errors.Is(err, protocol.ErrFrameTooLarge):
		return nil, fault("oversize", "%v", err)
	}
	return b, err
}

func (f *frameReader) json(max int, v any) error {
	b, err := f.frame(max)
	if err != nil {
		return err
	}
	if err := protocol.UnmarshalStrict(b, v); err != nil {
		return fault("garbage", "%v", err)
	}
	return nil
}

// serve answers one sync request.
func (s *syncer) serve(st network.Stream) {
	select {
	case s.serving <- struct{}{}:
		defer func() { <-s.serving }()
	default:
		s.drop("sync_busy")
		st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	if !s.limit.Allow(string(from)) {
		s.drop("rate_limited")
		st.Reset()
		return
	}
	_ = st.SetDeadline(time.Now().Add(s.timeout))
	var req protocol.Request
	r := bufReaders.Get().(*bufio.Reader)
	r.Reset(st)
	err := (&frameReader{st: st, r: r, timeout: s.timeout}).json(protocol.MaxSyncRequestBytes, &req)
	putReader(r)
	if err == nil {
		err = req.Check()
	}
	if err != nil {
		s.drop("sync_bad_request")
		s.log.Debug("bad sync request", "peer", from, "err", err)
		st.Reset()
		return
	}
	s.served.WithLabelValues(req.Type).Inc()
	w := bufWriters.Get().(*bufio.Writer)
	w.Reset(st)
	defer putWriter(w)
	switch req.Type {
	case protocol.RequestStatus:
		err = protocol.WriteJSON(w, s.status())
	case protocol.RequestBlocks:
		err = s.serveBlocks(w, &req)
	case protocol.RequestPeers:
		err = protocol.WriteJSON(w, s.discover.answer(from))
	case protocol.RequestTrace:
		var a protocol.TraceAnswer
		a.Trace, a.Known = s.trace(req.Hash)
		err = protocol.WriteJSON(w, a)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.log.Debug("serve sync request", "peer", from, "err", err)
		st.Reset()
	} else {
		st.Close()
	}
	if req.Type == protocol.RequestStatus {
		s.noteHead(from, *req.Status)
	}
}

func (s *syncer) serveBlocks(w *bufio.Writer, req *protocol.Request) error {
	me := s.status()
	raw, found, err := s.chain.After(req.Locator, req.Limit, protocol.MaxResponseBytes)
	if err != nil {
		return err
	}
	hdr := protocol.BlocksHeader{Count: len(raw), Status: me}
	if !found {
		hdr.Error = "no locator hash is on this node's main chain (another genesis?)"
	}
	if err := protocol.WriteJSON(w, hdr); err != nil {
		return err
	}
	for _, b := range raw {
		if err := protocol.WriteFrame(w, b); err != nil {
			return err
		}
	}
	return nil
}

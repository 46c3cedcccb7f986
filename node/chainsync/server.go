package chainsync

// The server side of the sync protocol: every request a peer makes (status,
// blocks, peers, trace) is answered here, within the serving limits.

import (
	"bufio"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"gossipchain/protocol"
)

// serve answers one sync request.
func (s *Syncer) serve(st network.Stream) {
	select {
	case s.serving <- struct{}{}:
		defer func() { <-s.serving }()
	default:
		s.deps.Drop("sync_busy")
		st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	if !s.limit.Allow(string(from)) {
		s.deps.Drop("rate_limited")
		st.Reset()
		return
	}
	_ = st.SetDeadline(time.Now().Add(s.deps.Timeout))
	var req protocol.Request
	r := bufReaders.Get().(*bufio.Reader)
	r.Reset(st)
	err := (&frameReader{st: st, r: r, timeout: s.deps.Timeout}).json(protocol.MaxSyncRequestBytes, &req)
	putReader(r)
	if err == nil {
		err = req.Check()
	}
	if err != nil {
		s.deps.Drop("sync_bad_request")
		s.deps.Log.Debug("bad sync request", "peer", from, "err", err)
		st.Reset()
		return
	}
	s.deps.Metrics.RequestServed(req.Type)
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
		a.Trace, a.Known = s.deps.Trace(req.Hash)
		err = protocol.WriteJSON(w, a)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.deps.Log.Debug("serve sync request", "peer", from, "err", err)
		st.Reset()
	} else {
		st.Close()
	}
	if req.Type == protocol.RequestStatus {
		s.noteHead(from, *req.Status)
	}
}

func (s *Syncer) serveBlocks(w *bufio.Writer, req *protocol.Request) error {
	me := s.status()
	raw, found, err := s.deps.Chain.After(req.Locator, req.Limit, protocol.MaxResponseBytes)
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

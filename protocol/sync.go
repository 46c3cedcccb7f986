package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gossipchain/ledger"
)

// SyncID is the libp2p protocol ID of block sync: a request/response
// protocol, one request per stream, by which a node learns its peers' heads
// and fetches the blocks it missed.
const SyncID = "/gossipchain/sync/1.0.0"

// Request types.
const (
	RequestStatus = "status"
	RequestBlocks = "blocks"
	RequestPeers  = "peers"
	RequestTrace  = "trace"
)

// Status is what a node says about its chain.
type Status struct {
	Genesis string `json:"genesis"`
	Height  uint64 `json:"height"`
	Head    string `json:"head"`
}

// Better reports whether s names a better head than (height, hash) under
// the fork-choice rule: higher, or as high with a lower hash.
func (s Status) Better(height uint64, hash string) bool {
	return ledger.BetterHead(s.Height, s.Head, height, hash)
}

// Request is the one frame a client sends on a sync stream.
type Request struct {
	// Type is RequestStatus, RequestBlocks, RequestPeers or RequestTrace.
	Type string `json:"type"`
	// Status is the asker's own status (status requests), so that one
	// exchange tells each side about the other.
	Status *Status `json:"status,omitempty"`
	// Locator lists hashes of the asker's main chain, newest first
	// (blocks requests); the answer starts after the newest one the
	// server has on its own main chain.
	Locator []string `json:"locator,omitempty"`
	// Limit is how many blocks the asker wants at most, 1..MaxBlocksPerResponse.
	Limit int `json:"limit,omitempty"`
	// Hash names the block whose trace is asked for (trace requests).
	Hash string `json:"hash,omitempty"`
}

// Check reports what is wrong with a request, if anything.
func (r *Request) Check() error {
	switch r.Type {
	case RequestStatus:
		if r.Status == nil {
			return errors.New("status request without the asker's status")
		}
		return r.Status.check()
	case RequestBlocks:
		if len(r.Locator) == 0 || len(r.Locator) > ledger.MaxLocator {
			return fmt.Errorf("locator has %d hashes, want 1..%d", len(r.Locator), ledger.MaxLocator)
		}
		for _, h := range r.Locator {
			if !isHash(h) {
				return fmt.Errorf("locator hash %.16q is not 64 hex digits", h)
			}
		}
		if r.Limit < 1 || r.Limit > MaxBlocksPerResponse {
			return fmt.Errorf("limit %d out of range 1..%d", r.Limit, MaxBlocksPerResponse)
		}
		return nil
	case RequestPeers:
		return nil
	case RequestTrace:
		if !isHash(r.Hash) {
			return fmt.Errorf("trace request hash %.16q is not 64 hex digits", r.Hash)
		}
		return nil
	}
	return fmt.Errorf("unknown request type %.32q", r.Type)
}

// PeerAddrs is one peer a node is connected to, as it tells others for
// discovery: its ID and the addresses it can be dialled on.
type PeerAddrs struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// PeersAnswer answers a peers request: some of the server's connected
// peers (not the asker), at most MaxPeersPerAnswer.
type PeersAnswer struct {
	Peers []PeerAddrs `json:"peers"`
}

func (s *Status) check() error {
	if !isHash(s.Genesis) || !isHash(s.Head) {
		return errors.New("status hashes are not 64 hex digits")
	}
	return nil
}

// BlocksHeader opens the answer to a blocks request: how many block frames
// follow, and the server's status when it answered.
type BlocksHeader struct {
	Count  int    `json:"count"`
	Status Status `json:"status"`
	// Error, if set, says why no blocks follow (no locator hash is on the
	// server's main chain: it has another genesis).
	Error string `json:"error,omitempty"`
}

// Check reports what is wrong with a header for a request of limit blocks.
func (h *BlocksHeader) Check(limit int) error {
	if h.Count < 0 || h.Count > limit {
		return fmt.Errorf("header announces %d blocks, %d were asked for", h.Count, limit)
	}
	return h.Status.check()
}

// CheckStatus reports what is wrong with a status a peer sent.
func CheckStatus(s *Status) error { return s.check() }

func isHash(s string) bool { return ledger.IsHash(s) }

// ErrFrameTooLarge is returned by ReadFrame for a frame over its limit.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame writes payload as one frame: its length as an unsigned varint,
// then the bytes.
func WriteFrame(w io.Writer, payload []byte) error {
	buf := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(payload)), uint64(len(payload)))
	_, err := w.Write(append(buf, payload...))
	return err
}

// ReadFrame reads one frame of at most max bytes; a longer one is an error
// (wrapping ErrFrameTooLarge) before anything is allocated for it.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// WriteJSON writes v as one frame.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, b)
}

// ReadJSON reads one frame of at most max bytes into v, strictly: unknown
// fields and trailing data are errors.
func ReadJSON(r *bufio.Reader, max int, v any) error {
	b, err := ReadFrame(r, max)
	if err != nil {
		return err
	}
	return UnmarshalStrict(b, v)
}

// UnmarshalStrict decodes one JSON value into v: unknown fields and trailing
// data are errors.
func UnmarshalStrict(b []byte, v any) error { return DecodeStrict(bytes.NewReader(b), v) }

// DecodeStrict is UnmarshalStrict reading from r: every JSON message
// gossipchain takes (blocks, sync frames, API bodies) is decoded so.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	if dec.More() {
		return fmt.Errorf("decode %T: trailing data", v)
	}
	return nil
}

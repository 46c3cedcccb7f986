package chainsync

// Framing shared by both ends of the sync protocol: buffered streams,
// frames read within a deadline, and the faults a bad answer proves.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"gossipchain/protocol"
)

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

// syncFault is a sync response that proves the peer misbehaved.
type syncFault struct {
	reason string
	err    error
}

func (f *syncFault) Error() string { return f.reason + ": " + f.err.Error() }

func fault(reason string, format string, args ...any) error {
	return &syncFault{reason, fmt.Errorf(format, args...)}
}

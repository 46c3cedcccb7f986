package chainsync

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Progress describes a sync in progress (or just finished).
type Progress struct {
	Peer   peer.ID `json:"peer"`
	From   uint64  `json:"from"`   // height when the sync started
	Height uint64  `json:"height"` // height now
	Target uint64  `json:"target"` // the peer's height
	// Done is set on the last report of a sync.
	Done    bool          `json:"done,omitempty"`
	Elapsed time.Duration `json:"-"`
}

// Progress returns the sync in progress, or nil.
func (s *Syncer) Progress() *Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress == nil {
		return nil
	}
	p := *s.progress
	return &p
}

// Busy reports whether a sync is in progress.
func (s *Syncer) Busy() bool { return s.Progress() != nil }

func (s *Syncer) setProgress(p *Progress, announce bool) {
	s.mu.Lock()
	if p == nil {
		s.progress = nil
	} else {
		cp := *p
		s.progress = &cp
	}
	s.mu.Unlock()
	if announce && p != nil && p.Height == p.From {
		s.deps.Report(*p)
	}
}

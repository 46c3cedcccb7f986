package node

import (
	"maps"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"gossipchain/protocol"
)

// GossipSub v1.1 peer scoring. A peer's score decides what this node does
// with it: below GossipThreshold it gets no gossip, below PublishThreshold
// none of our blocks, below GraylistThreshold everything it sends is
// dropped unread. Honest peers stay at or above 0: they only relay blocks
// they validated, and deliver some first.
const (
	GossipThreshold   = -100.0
	PublishThreshold  = -200.0
	GraylistThreshold = -400.0

	// invalidBlockWeight is applied to the square of the invalid messages a
	// peer delivered (decaying over an hour): one is -100, two are -400
	// (graylisted), ten are -10,000.
	invalidBlockWeight = -100.0
	// syncFaultPenalty is the application-specific score of a peer banned
	// from sync for bad sync data: it is graylisted in gossip too.
	syncFaultPenalty  = -1000.0
	scoreInspectEvery = time.Second
	// acceptPXNever is a score no peer reaches (P1 and P2 cap at +11).
	acceptPXNever = 1e6
)

// appScore is the application-specific part of a peer's GossipSub score:
// a peer banned from sync for bad sync data is graylisted in gossip too.
func (n *Node) appScore(p peer.ID) float64 {
	if n.sync.Faulty(p) {
		return syncFaultPenalty
	}
	return 0
}

// scoreOptions returns the GossipSub options that turn scoring on, with
// app as the application-specific score and scores receiving a snapshot of
// every peer's score each second.
func scoreOptions(app func(peer.ID) float64, scores *scoreBoard) []pubsub.Option {
	params := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics: map[string]*pubsub.TopicScoreParams{
			protocol.TopicBlocks: {
				SkipAtomicValidation: true,
				TopicWeight:          1,
				// P1: a little credit for staying in the mesh (up to +1).
				TimeInMeshWeight:  0.01,
				TimeInMeshQuantum: time.Second,
				TimeInMeshCap:     100,
				// P2: credit for delivering blocks first (up to +10).
				FirstMessageDeliveriesWeight: 0.2,
				FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
				FirstMessageDeliveriesCap:    50,
				// P4: invalid blocks (REJECT verdicts), squared.
				InvalidMessageDeliveriesWeight: invalidBlockWeight,
				InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
				// P3 (mesh delivery rate) stays off: a quiet network, where
				// nobody types for minutes, must not look like a lazy peer.
			},
		},
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		// P6 (IP colocation) stays off: local clusters and private
		// networks run many honest nodes on one address.
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   GossipThreshold,
		PublishThreshold:  PublishThreshold,
		GraylistThreshold: GraylistThreshold,
		// No peer's PRUNE makes this node dial anyone: honest nodes send
		// no peer exchange (gossip.go), and PX is accepted only from peers
		// above this score, which none reaches (at most about +11).
		AcceptPXThreshold:           acceptPXNever,
		OpportunisticGraftThreshold: 3,
	}
	return []pubsub.Option{
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(scores.set), scoreInspectEvery),
	}
}

// scoreBoard holds the latest peer scores GossipSub reported.
type scoreBoard struct {
	mu     sync.Mutex
	scores map[peer.ID]float64
}

func (s *scoreBoard) set(m map[peer.ID]float64) {
	s.mu.Lock()
	s.scores = maps.Clone(m)
	s.mu.Unlock()
}

func (s *scoreBoard) get(p peer.ID) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.scores[p]
	return v, ok
}

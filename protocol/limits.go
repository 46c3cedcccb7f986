package protocol

import (
	"time"

	"gossipchain/ledger"
)

// The limits two nodes must agree on, or that a node enforces on what its
// peers send it, each under one name. The chain's own bounds live with its
// rules in ledger (MaxDataBytes, MaxOrphans, DefaultFinality, MaxLocator,
// MaxClockDrift) and are used from there; the HTTP API's policy lives in
// node (api.go). docs/PROTOCOL.md lists them all with their reasons;
// docs/SECURITY.md says what each one protects.
const (
	// MaxBlockMessageBytes bounds one gossiped block message. JSON escaping
	// can make data up to six times longer (\u00XX), plus the fixed fields.
	MaxBlockMessageBytes = 6*ledger.MaxDataBytes + 1024

	// MaxGossipRPCBytes is GossipSub's limit on one RPC frame (several
	// messages and control data): room for the largest block message plus
	// batching, instead of the library's 1 MiB default. Peers split what
	// they send to fit it; a larger frame ends the stream.
	MaxGossipRPCBytes = 128 << 10

	// MaxReappendBatch bounds the lines a node re-appends after a reorg in
	// one transaction; the rest follow in the next round.
	MaxReappendBatch = 1000

	// MaxSyncRequestBytes bounds a sync request frame (a full locator is
	// about 4.3 KiB).
	MaxSyncRequestBytes = 8 << 10
	// MaxSyncHeaderBytes bounds a status or blocks-header frame.
	MaxSyncHeaderBytes = 1 << 10
	// MaxBlocksPerResponse bounds the blocks one sync answer carries.
	MaxBlocksPerResponse = 1000
	// MaxResponseBytes bounds the block frames of one sync answer together;
	// the server stops early rather than exceed it (one block always fits).
	MaxResponseBytes = 4 << 20
	// MaxSyncServing bounds the sync requests a node serves at once; more
	// are reset.
	MaxSyncServing = 16
	// SyncRequestsPerSecond and SyncRequestBurst rate-limit the sync
	// requests one peer may make; more are reset and counted as
	// rate_limited. A catching-up peer makes one request per 1,000 blocks,
	// one after another: at 50,000 blocks/s, 50 a second (at 20/s, sync
	// was capped at 20,000 blocks/s once the burst was spent).
	SyncRequestsPerSecond = 100
	SyncRequestBurst      = 100
	// MaxPeersPerAnswer bounds the peers one discovery answer lists, and
	// MaxAddrsPerPeer the addresses given for each.
	MaxPeersPerAnswer = 32
	MaxAddrsPerPeer   = 8
	// MaxPeersAnswerBytes bounds a discovery answer frame.
	MaxPeersAnswerBytes = 32 << 10
	// MaxTraces is how many recent blocks' traces a node keeps;
	// MaxTraceCopies bounds the duplicate senders one names and
	// MaxTraceForwards the peers it was sent to; MaxTraceAnswerBytes
	// bounds a trace answer frame.
	MaxTraces           = 4096
	MaxTraceCopies      = 16
	MaxTraceForwards    = 32
	MaxTraceAnswerBytes = 8 << 10
	// SyncTimeout bounds every read and write of a sync exchange.
	SyncTimeout = 10 * time.Second
)

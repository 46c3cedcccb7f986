package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gossipchain/ledger"
	"gossipchain/protocol"
)

// BenchmarkFlood measures what an attack costs a node process: an attacker
// host floods the victim with messages while an honest node types through
// it. It reports how many flood messages the victim judged and how fast,
// how long an honest block took to cross it, and the victim's peak memory.
//
//	go test -run '^$' -bench Flood -benchtime 1x .
//
// Two floods: "orphans" are validly signed blocks whose parent is unknown
// (ignored, not penalised: each costs a signature check), "garbage" is
// tampered, forged, malformed and oversized messages (rejected: the sender
// is graylisted within a few messages and the rest go unread).
func BenchmarkFlood(b *testing.B) {
	for _, kind := range []string{"orphans", "garbage"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				floodOnce(b, kind, 20000)
			}
		})
	}
}

func floodOnce(b *testing.B, kind string, count int) {
	dir := b.TempDir()
	victim := startProc(b, filepath.Join(dir, "victim"))
	honest := startProc(b, filepath.Join(dir, "honest"), victim.addr)
	topic := attackerTopic(b, victim.addr)
	waitFor(b, 20*time.Second, "mesh", func() bool { return victim.status(b).Mesh >= 1 && honest.status(b).Mesh >= 1 })

	msgs := floodMessages(kind, count)
	start := time.Now()
	sent := make(chan time.Duration, 1)
	go func() {
		for _, m := range msgs {
			if topic.Publish(context.Background(), m) != nil {
				break
			}
		}
		sent <- time.Since(start)
	}()
	// An honest line typed on the other node while the flood runs.
	time.Sleep(50 * time.Millisecond)
	typed := time.Now()
	resp, err := http.Post("http://"+honest.api+"/blocks", "application/json", strings.NewReader(`{"data":"during the flood"}`))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	waitFor(b, 60*time.Second, "the honest block on the victim", func() bool { return victim.status(b).Height == 1 })
	honestLatency := time.Since(typed)
	sendTime := <-sent
	// Judged: every flood message the victim read and gave a verdict; the
	// flood is over when that count has not moved for a second.
	var judged uint64
	lastChange := time.Now()
	waitFor(b, 60*time.Second, "the flood to be processed", func() bool {
		var total uint64
		for _, v := range victim.status(b).Drops {
			total += v
		}
		if total != judged {
			judged, lastChange = total, time.Now()
		}
		return time.Since(lastChange) > time.Second && time.Since(start) > sendTime
	})
	b.ReportMetric(float64(judged), "judged")
	b.ReportMetric(float64(judged)/lastChange.Sub(start).Seconds(), "judged/s")
	b.ReportMetric(float64(count)/sendTime.Seconds(), "sent/s")
	b.ReportMetric(float64(honestLatency.Milliseconds()), "honest_ms")
	b.ReportMetric(float64(peakRSS(b, victim.cmd.Process.Pid))/(1<<20), "peak_rss_MiB")
	b.Logf("%s: victim drops %v", kind, victim.status(b).Drops)
	victim.kill()
	honest.kill()
}

func floodMessages(kind string, count int) [][]byte {
	own := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	out := make([][]byte, 0, count)
	for i := range count {
		switch {
		case kind == "orphans":
			parent := &ledger.Block{Index: uint64(1000 + i), Hash: fmt.Sprintf("%064x", i+1)}
			blk, _ := own.Sign(parent, fmt.Sprintf("orphan %d", i), time.Now())
			m, _ := protocol.EncodeBlock(blk)
			out = append(out, m)
		case i%3 == 0:
			out = append(out, []byte(fmt.Sprintf("garbage %d", i)))
		case i%3 == 1:
			blk, _ := own.Sign(ledger.Genesis(), fmt.Sprintf("x %d", i), time.Now())
			blk.Data = "tampered"
			m, _ := protocol.EncodeBlock(blk)
			out = append(out, m)
		default:
			out = append(out, []byte(`{"data":"`+strings.Repeat("x", protocol.MaxBlockMessageBytes)+`"}`))
		}
	}
	return out
}

// attackerTopic starts a GossipSub host that validates nothing, connected
// to addr, and returns its handle on the blocks topic.
func attackerTopic(b *testing.B, addr string) *pubsub.Topic {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithPeerOutboundQueueSize(65536), pubsub.WithMaxMessageSize(protocol.MaxGossipRPCBytes),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return protocol.MessageID(m.Data) }))
	if err != nil {
		b.Fatal(err)
	}
	topic, err := ps.Join(protocol.TopicBlocks)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sub.Cancel)
	m, _ := ma.NewMultiaddr(addr)
	pi, _ := peer.AddrInfoFromP2pAddr(m)
	if err := h.Connect(ctx, *pi); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 10*time.Second, "attacker subscribed", func() bool { return len(topic.ListPeers()) > 0 })
	return topic
}

// peakRSS returns a process's peak resident memory (VmHWM), in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

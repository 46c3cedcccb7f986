package protocol

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"gossipchain/ledger"
)

// Fuzz targets: a few seconds each in CI (.ci/run), longer locally with
//
//	go test -run '^$' -fuzz FuzzDecodeBlock -fuzztime 5m ./protocol

func FuzzDecodeBlock(f *testing.F) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	b, _ := s.Sign(ledger.Genesis(), "hello", time.UnixMilli(1767225600000))
	good, _ := json.Marshal(b)
	f.Add(good)
	f.Add([]byte(`{"index":1}`))
	f.Add([]byte(`{"data":"\u0000\ud800"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		id := MessageID(data)
		if err != nil {
			if len(id) < 4 || id[:4] != "raw:" {
				t.Fatalf("undecodable message has ID %q", id)
			}
			return
		}
		// Whatever decodes must go through the rules without panicking,
		// and a block the rules accept must re-encode to an equal block.
		if b.CheckSanity() == nil {
			again, err := DecodeBlock(mustEncode(t, b))
			if err != nil || *again != *b {
				t.Fatalf("valid block does not round-trip: %v", err)
			}
		}
	})
}

func mustEncode(t *testing.T, b *ledger.Block) []byte {
	data, err := EncodeBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzSyncFrames(f *testing.F) {
	var buf bytes.Buffer
	WriteJSON(&buf, Request{Type: RequestBlocks, Locator: []string{ledger.Genesis().Hash}, Limit: 10})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteJSON(&buf, BlocksHeader{Count: 1, Status: Status{Genesis: ledger.Genesis().Hash, Head: ledger.Genesis().Hash}})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteJSON(&buf, Request{Type: RequestTrace, Hash: ledger.Genesis().Hash})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteJSON(&buf, TraceAnswer{Known: true, Trace: &Trace{Hash: ledger.Genesis().Hash, Via: "gossip", Copies: []TraceCopy{{From: "x"}}}})
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{5, '{', '}', '{', '}', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		var req Request
		if err := ReadJSON(r, MaxSyncRequestBytes, &req); err == nil {
			_ = req.Check()
		}
		r = bufio.NewReader(bytes.NewReader(data))
		var hdr BlocksHeader
		if err := ReadJSON(r, MaxSyncHeaderBytes, &hdr); err == nil {
			_ = hdr.Check(MaxBlocksPerResponse)
		}
		r = bufio.NewReader(bytes.NewReader(data))
		var trace TraceAnswer
		if err := ReadJSON(r, MaxTraceAnswerBytes, &trace); err == nil {
			if trace.Check(ledger.Genesis().Hash) == nil && trace.Known && trace.Trace.Hash != ledger.Genesis().Hash {
				t.Fatalf("a trace of %q passed as genesis's", trace.Trace.Hash)
			}
		}
		r = bufio.NewReader(bytes.NewReader(data))
		for range 8 {
			frame, err := ReadFrame(r, MaxBlockMessageBytes)
			if err != nil {
				break
			}
			if len(frame) > MaxBlockMessageBytes {
				t.Fatalf("frame of %d bytes passed a %d limit", len(frame), MaxBlockMessageBytes)
			}
		}
	})
}

// decodeCanonical takes only what encoding/json takes, and decodes it to
// the same block; every block EncodeBlock writes without escapes is one
// it takes.
func FuzzDecodeCanonical(f *testing.F) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	for _, line := range []string{"hello", "héllo wörld ✓", "a <b> & c", `quote " and \ slash`, "tab\there"} {
		b, _ := s.Sign(ledger.Genesis(), line, time.UnixMilli(1767225600000))
		good, _ := json.Marshal(b)
		f.Add(good)
	}
	f.Add([]byte(`{"index":0,"timestamp":-0,"data":"","prevHash":"","author":"","hash":"","signature":""}`))
	f.Add([]byte(`{"index":18446744073709551615,"timestamp":-9223372036854775808,"data":"x","prevHash":"","author":"","hash":"","signature":""}`))
	f.Add([]byte(`{"index":01,"timestamp":1,"data":"x","prevHash":"","author":"","hash":"","signature":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeCanonical(data)
		var slow ledger.Block
		err := UnmarshalStrict(data, &slow)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", data, err)
		}
		if *fast != slow {
			t.Fatalf("fast path %+v, encoding/json %+v", *fast, slow)
		}
	})
}

// Every block as EncodeBlock writes it, with a line needing no escape,
// takes the fast path.
func TestCanonicalTakesOwnBlocks(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	parent := ledger.Genesis()
	for i, line := range []string{"hello", "héllo wörld ✓", "a typed line, about as long as people type", "0"} {
		b, err := s.Sign(parent, line, time.UnixMilli(1767225600000+int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		data := mustEncode(t, b)
		got, ok := decodeCanonical(data)
		if !ok || *got != *b {
			t.Fatalf("own block %q: fast path %v, %+v", data, ok, got)
		}
		parent = b
	}
}

package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range []string{"", "x", strings.Repeat("y", 300)} {
		if err := WriteFrame(&buf, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range []string{"", "x", strings.Repeat("y", 300)} {
		got, err := ReadFrame(r, 1000)
		if err != nil || string(got) != want {
			t.Fatalf("frame %q, err %v; want %q", got, err, want)
		}
	}
	if _, err := ReadFrame(r, 1000); err == nil {
		t.Fatal("reading past the end succeeded")
	}

	buf.Reset()
	WriteFrame(&buf, make([]byte, 2000))
	if _, err := ReadFrame(bufio.NewReader(&buf), 1000); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	// A huge announced length is refused before anything is read or allocated.
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})), 1000); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge length: %v", err)
	}
	// A truncated frame is an error, not a short read.
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader([]byte{10, 'a'})), 1000); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func TestReadJSONStrict(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"type":"status"}`, true},
		{`{"type":"status","extra":1}`, false},
		{`{"type":"status"} {}`, false},
		{`not json`, false},
	} {
		var buf bytes.Buffer
		WriteFrame(&buf, []byte(tc.in))
		var req Request
		if err := ReadJSON(bufio.NewReader(&buf), MaxSyncRequestBytes, &req); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestRequestCheck(t *testing.T) {
	h := strings.Repeat("ab", 32)
	st := &Status{Genesis: h, Height: 3, Head: h}
	locator := make([]string, 65)
	for i := range locator {
		locator[i] = h
	}
	for _, tc := range []struct {
		name string
		req  Request
		ok   bool
	}{
		{"status", Request{Type: RequestStatus, Status: st}, true},
		{"status without status", Request{Type: RequestStatus}, false},
		{"status with a bad hash", Request{Type: RequestStatus, Status: &Status{Genesis: "xyz", Head: h}}, false},
		{"blocks", Request{Type: RequestBlocks, Locator: []string{h}, Limit: 10}, true},
		{"blocks, no locator", Request{Type: RequestBlocks, Limit: 10}, false},
		{"blocks, locator too long", Request{Type: RequestBlocks, Locator: locator, Limit: 10}, false},
		{"blocks, uppercase hash", Request{Type: RequestBlocks, Locator: []string{strings.ToUpper(h)}, Limit: 10}, false},
		{"blocks, limit 0", Request{Type: RequestBlocks, Locator: []string{h}}, false},
		{"blocks, limit too high", Request{Type: RequestBlocks, Locator: []string{h}, Limit: MaxBlocksPerResponse + 1}, false},
		{"unknown type", Request{Type: "gimme"}, false},
	} {
		if err := tc.req.Check(); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	hdr := BlocksHeader{Count: 5, Status: *st}
	if hdr.Check(5) != nil || hdr.Check(4) == nil {
		t.Error("header count check")
	}
}

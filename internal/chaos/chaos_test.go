package chaos

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
)

// The same seed gives the same schedule, one that is not empty and keeps
// within the run.
func TestSchedule(t *testing.T) {
	a, b := Schedule(7, 4, 15*time.Second), Schedule(7, 4, 15*time.Second)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) == 0 {
		t.Fatalf("schedules of one seed differ or are empty: %v / %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(Schedule(8, 4, 15*time.Second)) {
		t.Fatalf("seeds 7 and 8 give the same schedule: %v", a)
	}
	for _, f := range a {
		if f.At >= 13*time.Second {
			t.Errorf("fault %s starts in the last 2 s of the run", f)
		}
	}
}

// The checker finds each kind of violation.
func TestChecker(t *testing.T) {
	s := ledger.NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	var good []ledger.Block
	parent := ledger.Genesis()
	good = append(good, *parent)
	for i := range 3 {
		b, err := s.Sign(parent, fmt.Sprintf("line %d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, *b)
		parent = b
	}
	tampered := append([]ledger.Block{}, good...)
	tampered[2].Data = "line x"
	doubled := append(append([]ledger.Block{}, good...), good[3])
	doubled[4].Index = 4
	relinked, _ := s.Sign(&good[3], "line 0", time.Now()) // a line again
	twice := append(append([]ledger.Block{}, good...), *relinked)
	cases := []struct {
		name   string
		chains [][]ledger.Block
		acked  []string
		want   string
	}{
		{"ok", [][]ledger.Block{good, good}, []string{"line 0", "line 2"}, ""},
		{"lost", [][]ledger.Block{good}, []string{"line 9"}, `"line 9", acknowledged by node 1, is on the chain 0 times`},
		{"differ", [][]ledger.Block{good, good[:3]}, nil, "has 3 blocks"},
		{"tampered", [][]ledger.Block{tampered}, nil, "does not match"},
		{"unlinked", [][]ledger.Block{doubled}, nil, "does not link"},
		{"line twice", [][]ledger.Block{twice}, nil, `"line 0" is on the chain 2 times`},
		{"no genesis", [][]ledger.Block{good[1:]}, nil, "does not start at genesis"},
	}
	for _, tc := range cases {
		acked := map[string]int{}
		for _, l := range tc.acked {
			acked[l] = 1
		}
		v := check(tc.chains, acked, map[string]bool{"line 1": true})
		if (tc.want == "") != (v.violation == "") || !strings.Contains(v.violation, tc.want) {
			t.Errorf("%s: violation %q; want %q", tc.name, v.violation, tc.want)
		}
		if tc.want == "" && (v.height != 3 || v.landed != 1) {
			t.Errorf("%s: height %d, %d unanswered lines landed; want 3 and 1", tc.name, v.height, v.landed)
		}
	}
}

package node

import (
	"context"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestBuildVersion(t *testing.T) {
	vcs := func(rev, at, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: at}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "3631b60075bd026225ef57a5451c73ad1ccc56a1"
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
		rev  string
		at   string
	}{
		{"go run or go test", debug.BuildInfo{Main: debug.Module{Path: "gossipchain", Version: "(devel)"}}, "devel", "", ""},
		{"a tag", debug.BuildInfo{Main: debug.Module{Path: "gossipchain", Version: "v1.2.0"}, Settings: vcs(rev, "2026-12-03T14:36:00Z", "false")},
			"v1.2.0", rev, "2026-12-03T14:36:00Z"},
		{"a commit", debug.BuildInfo{Main: debug.Module{Path: "gossipchain", Version: "v0.0.0-20261203143600-3631b60075bd"}, Settings: vcs(rev, "2026-12-03T14:36:00Z", "false")},
			"v0.0.0-20261203143600-3631b60075bd", rev, "2026-12-03T14:36:00Z"},
		{"a modified tree", debug.BuildInfo{Main: debug.Module{Path: "gossipchain", Version: "v0.0.0-20261203143600-3631b60075bd+dirty"}, Settings: vcs(rev, "2026-12-03T14:36:00Z", "true")},
			"v0.0.0-20261203143600-3631b60075bd-dirty", rev, "2026-12-03T14:36:00Z"},
		{"a commit, no version", debug.BuildInfo{Main: debug.Module{Path: "gossipchain", Version: "(devel)"}, Settings: vcs(rev, "2026-12-03T14:36:00Z", "true")},
			"devel-3631b60075bd-dirty", rev, "2026-12-03T14:36:00Z"},
		{"embedded in another program", debug.BuildInfo{Main: debug.Module{Path: "example.com/app", Version: "v3.0.0"}, Deps: []*debug.Module{{Path: "gossipchain", Version: "v1.4.1"}}, Settings: vcs(rev, "2026-12-03T14:36:00Z", "true")},
			"v1.4.1", "", ""},
	} {
		b := buildFrom(&tc.bi)
		at := ""
		if !b.Time.IsZero() {
			at = b.Time.UTC().Format(time.RFC3339)
		}
		if b.String() != tc.want || b.Revision != tc.rev || at != tc.at {
			t.Errorf("%s: %q, revision %q, time %q; want %q, %q, %q", tc.name, b, b.Revision, at, tc.want, tc.rev, tc.at)
		}
	}
}

// Each node tells its peers gossipchain/<version> in libp2p's identify
// exchange, and lists theirs in Peers (GET /peers); another program's agent
// is shown as it says, but only printable and short.
func TestPeersShowAgent(t *testing.T) {
	a := startNode(t, "")
	b := startNode(t, "", a)
	want := "gossipchain/" + ReadBuild().String()
	if UserAgent() != want {
		t.Fatalf("UserAgent() = %q, want %q", UserAgent(), want)
	}
	agentOf := func(n *Node, id peer.ID) string {
		for _, p := range n.Peers() {
			if p.ID == id.String() {
				return p.Agent
			}
		}
		return ""
	}
	waitFor(t, 10*time.Second, "each node to list the other's agent", func() bool {
		return agentOf(a, b.ID()) == want && agentOf(b, a.ID()) == want
	})

	odd := "\x1b[2J\x1b[31mred" + strings.Repeat("x", 100)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics(), libp2p.UserAgent(odd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: a.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the odd agent listed", func() bool { return agentOf(a, h.ID()) != "" })
	got := agentOf(a, h.ID())
	if strings.ContainsFunc(got, func(r rune) bool { return !unicode.IsPrint(r) }) || utf8.RuneCountInString(got) > maxAgent+1 || !strings.HasPrefix(got, "?[2J?[31mred") {
		t.Errorf("agent %q listed as %q: want printable, at most %d characters and an ellipsis", odd, got, maxAgent)
	}

	if v, ok := value(scrape(t, a), "gossipchain_build_info", map[string]string{"version": ReadBuild().String()}); !ok || v != 1 {
		t.Errorf("gossipchain_build_info{version=%q} = %v (present %v), want 1", ReadBuild(), v, ok)
	}
}

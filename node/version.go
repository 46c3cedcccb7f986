package node

import (
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// modulePath is gossipchain's module path, as the Go build info names it.
const modulePath = "gossipchain"

// Build says which build of gossipchain this is, from what the Go
// toolchain stamped into the binary: the module's version, and for a
// binary built with `go build` in a git clone (-buildvcs, on by default)
// the commit it was built from.
type Build struct {
	// Version is the module's version: a tag (v1.2.0), a pseudo-version
	// naming a commit, or "" for a development build.
	Version string
	// Revision is the commit's hash and Time its time; empty without VCS
	// information (go run, go test, a build outside a clone or with
	// -buildvcs=false).
	Revision string
	Time     time.Time
	// Modified is set when the working tree had uncommitted changes.
	Modified bool
	// Go is the toolchain that built the binary.
	Go string
}

// ReadBuild returns this binary's build of gossipchain.
func ReadBuild() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{}
	}
	return buildFrom(bi)
}

// buildFrom reads gossipchain's version from a binary's build info: the
// main module's, or, in a program that embeds gossipchain, the
// dependency's (whose commit the build info does not record).
func buildFrom(bi *debug.BuildInfo) Build {
	b := Build{Go: bi.GoVersion}
	if bi.Main.Path != modulePath {
		for _, dep := range bi.Deps {
			if dep.Path == modulePath {
				b.Version = cleanVersion(dep.Version)
			}
		}
		return b
	}
	b.Version = cleanVersion(bi.Main.Version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	// The toolchain marks a modified tree in the version too (+dirty),
	// even when it records no other VCS setting.
	if strings.HasSuffix(bi.Main.Version, "+dirty") {
		b.Modified = true
	}
	return b
}

// cleanVersion is v without the toolchain's "+dirty" (Build.Modified
// says it) and without "(devel)", which means no version.
func cleanVersion(v string) string {
	v = strings.TrimSuffix(v, "+dirty")
	if v == "(devel)" {
		return ""
	}
	return v
}

// String is the version as people and peers see it: the module's version,
// or "devel" and the commit's first 12 digits for a development build,
// with "-dirty" when the tree was modified.
func (b Build) String() string {
	v := b.Version
	if v == "" {
		v = "devel"
		if b.Revision != "" {
			v += "-" + b.Revision[:min(12, len(b.Revision))]
		}
	}
	if b.Modified {
		v += "-dirty"
	}
	return v
}

// UserAgent is the agent this node tells its peers in libp2p's identify
// exchange, gossipchain/<version>; a peer's shows in GET /peers.
func UserAgent() string { return "gossipchain/" + ReadBuild().String() }

// buildInfoGauge is gossipchain_build_info: 1, labelled with the build,
// so that a dashboard can show which version each node runs.
func buildInfoGauge() prometheus.Collector {
	b := ReadBuild()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gossipchain_build_info",
		Help: "Always 1; the labels name this node's build: version, revision (the commit, \"\" if unknown), Go version.",
		ConstLabels: prometheus.Labels{
			"version":   b.String(),
			"revision":  b.Revision,
			"goversion": b.Go,
		},
	})
	g.Set(1)
	return g
}

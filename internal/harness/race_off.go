//go:build !race

package harness

// raceEnabled: this process runs under the race detector, and so do the
// nodes it builds.
const raceEnabled = false

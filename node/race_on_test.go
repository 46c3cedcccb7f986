//go:build race

package node

// raceBuild is set when the tests run under the race detector (the
// simulator skips itself then).
const raceBuild = true

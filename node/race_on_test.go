//go:build race

package node

// raceBuild is set when the tests run under the race detector (its
// memory and goroutine costs make the simulator's default smaller).
const raceBuild = true

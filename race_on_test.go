//go:build race

package main

// raceBuild is set when the tests run under the race detector; the node
// binary they start is then built with it too.
const raceBuild = true

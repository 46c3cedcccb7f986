//go:build !linux

package harness

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its
// parent. Cleanups and Close still end every node.
func dieWithParent(*exec.Cmd) {}

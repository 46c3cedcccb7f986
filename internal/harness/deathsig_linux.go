package harness

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the node if the process that started
// it dies first (a test binary past its -timeout, a chaos run killed):
// no node outlives its launcher. Strictly, the signal comes when the
// launcher's thread that started it exits; Go keeps its threads for the
// life of the process, unless a goroutine exits locked to one, which
// nothing here does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

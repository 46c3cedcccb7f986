package node

import (
	"os"
	"testing"

	"gossipchain/internal/harness"
)

// TestMain removes, once the tests are done, the gossipchain binary the
// process benchmarks had internal/harness build.
func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

package ledger

import (
	"errors"
	"testing"
	"time"
)

// within runs fn and fails the test if it has not returned after d: a
// closed chain must answer at once, not block.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s blocked after Close", what)
		return nil
	}
}

func TestClosedChainRefusesWork(t *testing.T) {
	c, _ := openTest(t)
	run := build(t, signer(1), Genesis(), 3, "c")
	if _, err := c.Add(run[:1]...); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"Append", func() error { r, err := c.Append(signer(2), "late"); return errors.Join(err, r.Wait()) }},
		{"Add", func() error { _, err := c.Add(run[1]); return err }},
		{"Add of an orphan", func() error { _, err := c.Add(run[2]); return err }},
		{"Add a run", func() error { _, err := c.Add(run[1:]...); return err }},
		{"Reappend", func() error { _, err := c.Reappend(signer(2), 10); return err }},
		{"Range", func() error { _, err := c.Range(0, 10); return err }},
		{"After", func() error { _, _, err := c.After([]string{Genesis().Hash}, 10, 1<<20); return err }},
	} {
		if err := within(t, 5*time.Second, tc.name, tc.fn); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", tc.name, err)
		}
	}
	if c.Orphans() != 0 {
		t.Errorf("a closed chain held an orphan")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A confirmation of durability never says yes after saying no.
func TestWaitAnswersTheSameEveryTime(t *testing.T) {
	c, _ := openTest(t)
	c.db.Close() // the store fails under the flusher
	res, err := c.Append(signer(1), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	first := res.Wait()
	if first == nil {
		t.Fatal("Wait reported a write to a closed store as durable")
	}
	for i := range 3 {
		if err := res.Wait(); err == nil || err.Error() != first.Error() {
			t.Fatalf("Wait call %d: %v, first said %v", i+2, err, first)
		}
	}
	if _, err := c.Append(signer(1), "after a failure"); err == nil {
		t.Error("a commit was accepted after the store failed")
	}
}

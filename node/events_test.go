package node

import (
	"testing"
)

// A Follower sees every event, in order, however far behind it falls, and
// reads what was queued before it stopped or the hub closed.
func TestFollowerSeesEveryEventInOrder(t *testing.T) {
	const total = 5000
	h := newEventHub()
	f := &Follower{hub: h, sub: h.add(0)}
	go func() {
		for i := range total {
			h.publish(Event{Type: "head", Height: uint64(i)})
		}
		h.close()
	}()
	var got, batches int
	for events := f.Next(); events != nil; events = f.Next() {
		batches++
		for _, e := range events {
			if e.Height != uint64(got) {
				t.Fatalf("event %d has height %d", got, e.Height)
			}
			got++
		}
	}
	if got != total {
		t.Fatalf("read %d events of %d", got, total)
	}
	t.Logf("%d events in %d batches", got, batches)

	// Queued, then stopped: the queue is still read, then nothing.
	h = newEventHub()
	f = &Follower{hub: h, sub: h.add(0)}
	h.publish(Event{Type: "head", Height: 1})
	h.publish(Event{Type: "head", Height: 2})
	f.Stop()
	h.publish(Event{Type: "head", Height: 3}) // after Stop: not seen
	if events := f.Next(); len(events) != 2 || events[1].Height != 2 {
		t.Fatalf("after Stop, Next = %+v, want the 2 events queued before it", events)
	}
	if events := f.Next(); events != nil {
		t.Fatalf("second Next after Stop = %+v, want nil", events)
	}

	// Following a closed hub ends at once.
	if events := (&Follower{hub: h, sub: func() *subscriber { h.close(); return h.add(0) }()}).Next(); events != nil {
		t.Fatalf("Next on a closed hub = %+v, want nil", events)
	}
}

// A subscriber (GET /events) that falls more than its limit behind is
// dropped: its channel closes after the events it was sent.
func TestSubscriberDroppedWhenBehind(t *testing.T) {
	h := newEventHub()
	defer h.close()
	events, cancel := h.subscribe(eventQueue)
	defer cancel()
	for i := range eventQueue + 2 {
		h.publish(Event{Type: "head", Height: uint64(i)})
	}
	if n := h.subscribers(); n != 0 {
		t.Fatalf("%d subscribers after falling %d events behind, want 0", n, eventQueue+2)
	}
	read := 0
	for range events {
		read++
	}
	if read > eventQueue+1 {
		t.Fatalf("read %d events from a dropped subscriber, want at most %d", read, eventQueue+1)
	}
}

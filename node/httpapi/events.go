package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"gossipchain/node"
)

// eventHeartbeat keeps idle event streams open through proxies.
const eventHeartbeat = 15 * time.Second

// eventsHandler streams events as Server-Sent Events: "event: <type>" and
// "data: <JSON Event>" per event, starting with the current head. At most
// MaxEventStreams are open at once.
func eventsHandler(events EventSource, chain ChainReader, drops DropCounter) http.HandlerFunc {
	streams := make(chan struct{}, MaxEventStreams) // one token per open stream
	return func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
			return
		}
		select {
		case streams <- struct{}{}:
			defer func() { <-streams }()
		default:
			drops.CountDrop("api_events_full")
			w.Header().Set("Retry-After", "5")
			// And the connection goes: a client refused a stream has no other
			// use for it, and a thousand of them idle would hold their buffers.
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, "%d event streams are open already", MaxEventStreams)
			return
		}
		ch, cancel := events.Subscribe()
		defer cancel()
		s := startStream(w, flusher)
		head := chain.Head()
		if s.send(node.Event{Type: "head", Height: head.Index, Head: head.Hash}) != nil {
			return
		}
		s.follow(r, ch)
	}
}

// eventStream is one open GET /events answer.
type eventStream struct {
	w       http.ResponseWriter
	flusher http.Flusher
	rc      *http.ResponseController
}

// startStream writes the answer's header. The server's write timeout is for
// answers; a stream's deadline moves with every write instead (heartbeats
// keep it moving when idle).
func startStream(w http.ResponseWriter, flusher http.Flusher) *eventStream {
	s := &eventStream{w: w, flusher: flusher, rc: http.NewResponseController(w)}
	s.extend()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return s
}

func (s *eventStream) extend() { s.rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }

func (s *eventStream) send(e node.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.extend()
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", e.Type, data); err != nil {
		return err
	}
	s.flusher.Flush()
	return nil
}

// follow sends events from ch, and a heartbeat when idle, until the client
// goes, ch closes or a write fails.
func (s *eventStream) follow(r *http.Request, ch <-chan node.Event) {
	beat := time.NewTicker(eventHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			s.extend()
			if _, err := fmt.Fprint(s.w, ": keep-alive\n\n"); err != nil {
				return
			}
			s.flusher.Flush()
		case e, ok := <-ch:
			if !ok || s.send(e) != nil {
				return
			}
		}
	}
}

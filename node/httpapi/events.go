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

// handleEvents streams events as Server-Sent Events: "event: <type>" and
// "data: <JSON Event>" per event, starting with the current head.
func (a *api) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		a.n.CountDrop("api_events_full")
		w.Header().Set("Retry-After", "5")
		// And the connection goes: a client refused a stream has no other
		// use for it, and a thousand of them idle would hold their buffers.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "%d event streams are open already", MaxEventStreams)
		return
	}
	ch, cancel := a.n.Subscribe()
	defer cancel()
	// The server's write timeout is for answers; a stream's deadline moves
	// with every write instead (heartbeats keep it moving when idle).
	rc := http.NewResponseController(w)
	extend := func() { rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }
	extend()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	head := a.n.Chain().Head()
	send := func(e node.Event) error {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		extend()
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, data); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	if send(node.Event{Type: "head", Height: head.Index, Head: head.Hash}) != nil {
		return
	}
	beat := time.NewTicker(eventHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			extend()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case e, ok := <-ch:
			if !ok || send(e) != nil {
				return
			}
		}
	}
}

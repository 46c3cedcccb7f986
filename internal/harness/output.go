package harness

import (
	"bytes"
	"io"
	"sync"
)

// LineFunc returns a writer, for Config.Stdout, that calls fn with each
// complete line written to it, without its newline.
func LineFunc(fn func(line string)) io.Writer {
	return &lineWriter{fn: fn}
}

type lineWriter struct {
	mu  sync.Mutex // guards buf; serialises fn
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(string(bytes.TrimSuffix(w.buf[:i], []byte("\r"))))
		w.buf = w.buf[i+1:]
	}
}

// tailBytes is how much of a node's log failure messages show.
const tailBytes = 4 << 10

// tail keeps the last tailBytes written to it.
type tail struct {
	mu  sync.Mutex // guards buf
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lenient passes writes on and reports none of their errors: a writer
// that fails must not stop the copying, or the node would block on a
// full pipe.
type lenient struct{ w io.Writer }

func (l lenient) Write(p []byte) (int, error) {
	l.w.Write(p)
	return len(p), nil
}

// teeTail writes to w (if any) and to a tail.
type teeTail struct {
	w io.Writer
	t *tail
}

func (t teeTail) Write(p []byte) (int, error) {
	if t.w != nil {
		t.w.Write(p)
	}
	return t.t.Write(p)
}

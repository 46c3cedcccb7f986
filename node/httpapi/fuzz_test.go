package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"gossipchain/node"
)

// FuzzAPI sends arbitrary requests to a real node's JSON API: no answer may
// be a 5xx, and every answer is JSON. POST /peers is left out: it dials
// whatever address it is given, and a fuzzer must not reach beyond loopback.
func FuzzAPI(f *testing.F) {
	n, err := node.New(node.Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	h := Handler(n, n.Chain(), Options{})
	for _, seed := range []struct {
		method uint8
		path   string
		body   string
	}{
		{0, "/status", ""},
		{0, "/blocks?from=0&limit=5", ""},
		{0, "/blocks/0", ""},
		{1, "/blocks", `{"data":"hello"}`},
		{1, "/blocks", `{"data":"` + strings.Repeat("é", 5000) + `"}`},
		{0, "/blocks?from=18446744073709551615&limit=1000", ""},
		{2, "/peers", ""},
		{0, "/%zz", ""},
		{0, "/blocks//0", ""},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	jsonPath := func(p string) bool {
		p = path.Clean("/" + p)
		return p != "/" && p != "/events" && p != "/metrics" && !strings.HasPrefix(p, "/static")
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"}
	calls := 0
	f.Fuzz(func(t *testing.T, m uint8, target, body string) {
		method := methods[int(m)%len(methods)]
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		u, err := url.Parse(target)
		if err != nil || !jsonPath(u.Path) {
			return // the dashboard's files, the metrics text, the event stream
		}
		if method == "POST" && strings.HasPrefix(path.Clean("/"+u.Path), "/peers") {
			return
		}
		req, err := http.NewRequest(method, "http://node"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		calls++
		req.RemoteAddr = fmt.Sprintf("127.0.%d.%d:1", calls>>8&255, calls&255) // stay under the rate limit
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q %.80q: %d %s", method, target, body, rec.Code, rec.Body)
		}
		if method != "HEAD" && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: answer is not JSON: %.200q", method, target, rec.Body)
		}
	})
}

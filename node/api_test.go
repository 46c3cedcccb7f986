package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"gossipchain/ledger"
)

func TestAPIErrors(t *testing.T) {
	n := startNode(t, "")
	h := n.Handler()
	cases := []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/blocks", `{"data":"ok"}`, http.StatusCreated},
		{"GET", "/blocks/1", "", http.StatusOK},
		{"POST", "/blocks", `{"data":`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":""}`, http.StatusBadRequest},
		{"POST", "/blocks", `{}`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":"x","more":1}`, http.StatusBadRequest},
		{"POST", "/blocks", `{"data":"` + strings.Repeat("x", ledger.MaxDataBytes+1) + `"}`, http.StatusRequestEntityTooLarge},
		{"POST", "/blocks", `{"data":"` + strings.Repeat("x", maxAPIBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"GET", "/blocks?limit=0", "", http.StatusBadRequest},
		{"GET", "/blocks?from=-1", "", http.StatusBadRequest},
		{"GET", "/blocks/abc", "", http.StatusBadRequest},
		{"GET", "/blocks/99", "", http.StatusNotFound},
		{"GET", "/nope", "", http.StatusNotFound},
		{"GET", "/blocks//1", "", http.StatusTemporaryRedirect},
		{"GET", "/static/../status", "", http.StatusTemporaryRedirect},
		{"DELETE", "/blocks", "", http.StatusMethodNotAllowed},
		{"POST", "/peers", `{"addr":"not a multiaddr"}`, http.StatusBadRequest},
		{"POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1"}`, http.StatusBadRequest},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if rec.Code != tc.code {
			t.Errorf("%s %s %.40q: %d %s, want %d", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.code)
			continue
		}
		if rec.Code == http.StatusTemporaryRedirect && rec.Header().Get("Location") != path.Clean(tc.path) {
			t.Errorf("%s %s: redirected to %q, want %q", tc.method, tc.path, rec.Header().Get("Location"), path.Clean(tc.path))
		}
		if rec.Code >= 300 {
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: error body %q is not {\"error\": ...}", tc.method, tc.path, rec.Body)
			}
		}
	}
	if n.Chain().Height() != 1 {
		t.Errorf("height %d after one good POST, want 1", n.Chain().Height())
	}
}

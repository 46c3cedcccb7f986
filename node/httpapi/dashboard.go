package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard is three static files embedded in the binary: no build step,
// no CDN. It reads the JSON API and follows GET /events.
//
//go:embed web
var webFiles embed.FS

func dashboard() http.Handler {
	files, _ := fs.Sub(webFiles, "web")
	static := http.StripPrefix("/static/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, files, "index.html")
			return
		}
		static.ServeHTTP(w, r)
	})
}

package chat

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/moonchat/moonchat/core/chat/web"
)

// pageCSP is the Content-Security-Policy of the chat page and its files.
// The page loads only its own script and style sheet (no inline script or
// style attribute in the markup; app.js sets CSS custom properties through
// the CSSOM, which style-src does not govern), talks to its own server over
// WebSocket (CSP Level 3 §6.7.2.8: 'self' matches ws: and wss: on the
// page's host and port), uses a data: URL only for the empty favicon, and
// may not be framed (frame-ancestors, with X-Frame-Options for older
// browsers) or re-based.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; object-src 'none'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// pageHeaders are set on every response of the page handler, including its
// errors.
var pageHeaders = [...][2]string{
	{"Content-Security-Policy", pageCSP},
	{"X-Frame-Options", "DENY"},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
}

// pageHandler serves the chat page (package web) for GET and HEAD: its
// files at their names, index.html at /, with pageHeaders. index.html is a
// template: the server fills in the room the page offers by default
// (defaultRoom, [chat] default_room), in a <meta> that app.js reads (the
// policy forbids inline script, so the value cannot be a script).
func pageHandler(defaultRoom string) (http.Handler, error) {
	index, err := renderIndex(defaultRoom)
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(web.FS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range pageHeaders {
			w.Header().Set(h[0], h[1])
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// The page depends on the server's configuration: revalidate.
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
			return
		}
		// The file server redirects /index.html to /, so the template
		// itself is never served.
		files.ServeHTTP(w, r)
	}), nil
}

// renderIndex executes index.html (an html/template, which escapes the
// room for its attribute context) for defaultRoom.
func renderIndex(defaultRoom string) ([]byte, error) {
	src, err := fs.ReadFile(web.FS, "index.html")
	if err != nil {
		return nil, fmt.Errorf("chat page: %w", err)
	}
	t, err := template.New("index.html").Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("chat page: parse index.html: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ DefaultRoom string }{defaultRoom}); err != nil {
		return nil, fmt.Errorf("chat page: render index.html: %w", err)
	}
	return b.Bytes(), nil
}

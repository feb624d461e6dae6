// Package web holds moonchat's chat page: a single static page (index.html,
// app.js, style.css) that speaks the JSON subprotocol "moonchat.v1"
// described in docs/protocol.md. The files are embedded in the binary; the
// chat server serves FS at "/".
//
// The page uses no CDN, framework or build step, so what is in static/ is
// what browsers get, with one exception: index.html is an html/template into
// which the chat server writes its configuration (the default room, in a
// <meta>, since the page's content security policy allows no inline script).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the chat page's files, rooted so that "index.html", "app.js" and
// "style.css" are at the top (serve it with http.FileServerFS). It is
// read-only: embedded files cannot change at run time.
var FS fs.FS = mustSub(static, "static")

// mustSub roots fsys at dir. fs.Sub fails only for an invalid path, and dir
// is a constant, so an error here is a programming error caught by any test.
func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("web: embedded static files: " + err.Error())
	}
	return sub
}

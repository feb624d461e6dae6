// Package web holds moonchat's chat page: a single static page (index.html,
// app.js, direct.js, style.css) that speaks the JSON subprotocol
// "moonchat.v1" described in docs/protocol.md. The files are embedded in the binary; the
// chat server serves FS at "/".
//
// The page uses no CDN, framework or build step, so what is in static/ is
// what browsers get, with one exception: index.html is an html/template into
// which the chat server writes its configuration (the default room, in a
// <meta>, since the page's content security policy allows no inline script).
//
// Identity (docs/protocol.md, "The chat page and credentials"): before
// every connection the page asks GET /api/session for the room, because a
// page cannot read the HTTP status of a refused WebSocket handshake; a
// 401/403 is shown with its reason and the sign-in forms (a token box, and
// a name/password form when GET /api/login says a login script is
// loaded). Its token comes from a login (POST /api/login), the box, or the
// address (#token=T, which an embedding application may link to; the page
// removes it from the address bar), lives in sessionStorage, and travels
// as ?token= on the WebSocket URL and as an Authorization: Bearer header
// on the page's HTTP calls. A login's token is renewed before it expires
// (POST /api/token, then {"type":"token"} on the socket); close code 4001
// brings back the sign-in forms. Members and messages with an account id
// carry a check mark (the id in its tooltip) and badges for their roles.
//
// Direct messages (direct.js, an ES module app.js imports): the user's
// conversations are listed beside the room with unread counts (the last id
// read of an account's conversation kept in localStorage), and one opens
// in the room's place, from the list or by clicking a member's name.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the chat page's files, rooted so that "index.html", "app.js",
// "direct.js" and "style.css" are at the top (serve it with
// http.FileServerFS). It is read-only: embedded files cannot change at run
// time.
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

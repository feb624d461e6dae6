package chat

import (
	"net/http"
	"strings"
)

// placeholderPage is served at / until the browser page (package
// core/chat/web) is wired in. It speaks the plain-text format.
const placeholderPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moonchat</title></head>
<body>
<h1>moonchat</h1>
<pre id="log"></pre>
<form id="f"><input id="t" autocomplete="off" autofocus><button>send</button></form>
<script>
const log = document.getElementById("log");
const proto = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(proto + location.host + "/chat" + location.search);
ws.onmessage = e => { log.textContent += e.data + "\n"; };
ws.onclose = e => { log.textContent += "* disconnected (" + e.code + " " + e.reason + ")\n"; };
document.getElementById("f").onsubmit = e => {
  e.preventDefault();
  const t = document.getElementById("t");
  if (t.value) { ws.send(t.value); t.value = ""; }
};
</script>
</body></html>
`

// pageHandler serves the chat page for GET / (and for /chat and
// /chat/ROOM, so a room's URL opens the page in a browser).
func pageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if p != "/" && p != "/index.html" && p != "/chat" && !strings.HasPrefix(p, "/chat/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(placeholderPage))
	})
}

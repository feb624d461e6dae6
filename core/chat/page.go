package chat

import (
	"net/http"

	"github.com/moonchat/moonchat/core/chat/web"
)

// pageHandler serves the chat page (package web) for GET and HEAD: its
// files at their names, index.html at /.
func pageHandler() http.Handler {
	files := http.FileServerFS(web.FS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	})
}

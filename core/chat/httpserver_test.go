package chat_test

import (
	"net"
	"net/http"
)

// httpServer runs an http.Server on a listener until stop, which waits
// for it.
type httpServer struct {
	hs   *http.Server
	done chan struct{}
}

func (h *httpServer) start(ln net.Listener, handler http.Handler) {
	h.hs = &http.Server{Handler: handler}
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.hs.Serve(ln)
	}()
}

func (h *httpServer) stop() {
	_ = h.hs.Close()
	<-h.done
}

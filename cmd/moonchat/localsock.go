package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The local socket: a Unix socket the running server listens on beside
// its store file, serving a small HTTP API for what needs file-level
// trust — today the direct-message reads of `moonchat history -direct`
// (history_direct.go), and the script console (console_server.go). It exists
// because the server holds the bbolt file locked while it runs, and what
// only someone with access to the data directory may read must not go
// through the network API (not even with the [admin] token).
//
// Trust: whoever can connect is trusted like whoever can read the store
// file. The socket is mode 0600 from the moment it can be reached (it is
// bound in a private 0700 directory, made 0600, then renamed into place),
// so only the server's user (and root) can connect; the data directory is
// 0700 when moonchat created it. The socket exists only while a server
// with a store runs: it is removed at shutdown, and a stale one (a server
// killed with -9) is replaced at start — never a live one, nor a file that
// is not a socket.
//
// API for the rest of the package:
//
//	ls := newLocalSocket(path, log)     // serve's open, once the store is open
//	ls.handle("GET /direct/names", h)   // net/http patterns; add routes any
//	                                    // time before serve (s.local in open)
//	err := ls.listen()                  // makes the socket
//	go ls.serve()                       // http.ErrServerClosed after shutdown
//	ls.shutdown(ctx)                    // stops, removes the file
//
// serve's open makes it right after the store (server.openLocalSocket);
// what is opened later (the scripts) adds its routes to s.local when that
// is not nil (nil: no store, or the socket could not be made — logged, and
// the server runs without it).
//
//	err := localGet(ctx, path, "/direct/names", query, &answer) // a client
//
// Answers are JSON; an error is a non-2xx status with {"error": "..."}
// (localError), which localGet returns as an error.

// localSocketPath returns where the server with this config listens: the
// store file's name with ".sock" for its extension, in the same directory
// ("data/moonchat.db" → "data/moonchat.sock"); "" when the store is off
// (no store, no socket: nothing on it would work).
func localSocketPath(cfg *Config) string {
	p := cfg.Store.Path
	if p == "" {
		return ""
	}
	sock := strings.TrimSuffix(p, filepath.Ext(p)) + ".sock"
	if sock == p { // a store file named *.sock
		sock += ".sock"
	}
	return sock
}

// maxSocketPath is the longest socket path the operating systems take
// (sun_path: 108 bytes on Linux, 104 on the BSDs and macOS, with its NUL).
const maxSocketPath = 103

// localSocket is the server side: an HTTP server on the Unix socket.
type localSocket struct {
	path string
	log  *slog.Logger
	mux  *http.ServeMux
	srv  *http.Server
	ln   *net.UnixListener
	// file identifies the socket file this server made, so that shutdown
	// removes it and not one another process put there since.
	file os.FileInfo
}

// newLocalSocket returns a socket server for path with no routes yet.
func newLocalSocket(path string, log *slog.Logger) *localSocket {
	mux := http.NewServeMux()
	return &localSocket{
		path: path,
		log:  log,
		mux:  mux,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          httpErrorLog(log, nil),
			// The connection in each request's context: whose process
			// is on the other end (peerUser, for the console's audit).
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return context.WithValue(ctx, localConnKey{}, c)
			},
		},
	}
}

// localConnKey is the context key of a request's connection on the socket.
type localConnKey struct{}

// handle adds a route (a net/http ServeMux pattern, e.g. "GET /x").
func (l *localSocket) handle(pattern string, h http.Handler) { l.mux.Handle(pattern, h) }

// listen creates the socket, mode 0600, replacing a stale one. It fails
// when something that is not a socket is at the path, when another
// process answers on it, or when the path is too long for a socket.
func (l *localSocket) listen() error {
	if len(l.path) > maxSocketPath {
		return fmt.Errorf("local socket %s: the path is %d bytes, sockets take at most %d: use a shorter [store] path", l.path, len(l.path), maxSocketPath)
	}
	if err := removeStaleSocket(l.path); err != nil {
		return err
	}
	// Bind in a private directory, make it 0600, then rename it into
	// place: nobody else can reach it while its mode is the umask's.
	tmp, err := os.MkdirTemp(filepath.Dir(l.path), ".s")
	if err != nil {
		return fmt.Errorf("local socket %s: %w", l.path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	if len(bound) > maxSocketPath {
		return fmt.Errorf("local socket %s: binding it takes a path of %d bytes (%s), sockets take at most %d: use a shorter [store] path", l.path, len(bound), bound, maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return fmt.Errorf("local socket %s: %w", l.path, err)
	}
	ln.SetUnlinkOnClose(false) // it is renamed: shutdown removes it by its final name
	if err := os.Chmod(bound, 0o600); err != nil {
		_ = ln.Close()
		return fmt.Errorf("local socket %s: %w", l.path, err)
	}
	if err := os.Rename(bound, l.path); err != nil {
		_ = ln.Close()
		return fmt.Errorf("local socket %s: %w", l.path, err)
	}
	if l.file, err = os.Lstat(l.path); err != nil {
		_ = ln.Close()
		return fmt.Errorf("local socket %s: %w", l.path, err)
	}
	l.ln = ln
	return nil
}

// removeStaleSocket removes a socket at path that nobody answers on: the
// leftover of a server that did not shut down. The caller holds the store
// file (only one process can), so a second server of the same store
// cannot be running; what answers belongs to something else and stays.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("local socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("local socket %s: a %s is in the way (not a socket): move it", path, describeMode(fi.Mode()))
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("local socket %s: another process listens on it (two servers with store files of the same name in one directory?)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// describeMode names a file type for error messages.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "file of mode " + m.String()
	}
}

// serve answers on the socket until shutdown (then http.ErrServerClosed).
func (l *localSocket) serve() error { return l.srv.Serve(l.ln) }

// shutdown stops the server (waiting for requests within ctx) and
// removes the socket file, if it is still the one listen made.
func (l *localSocket) shutdown(ctx context.Context) {
	if err := l.srv.Shutdown(ctx); err != nil {
		l.log.Warn("local socket shutdown", "path", l.path, "err", err)
		_ = l.srv.Close()
	}
	l.remove()
}

// close closes a socket that never served (open failed) and removes it.
func (l *localSocket) close() {
	if l.ln != nil {
		_ = l.ln.Close()
	}
	l.remove()
}

func (l *localSocket) remove() {
	if l.file == nil {
		return
	}
	if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.file) {
		if err := os.Remove(l.path); err != nil {
			l.log.Warn("remove local socket", "path", l.path, "err", err)
		}
	}
}

// localError is the body of an error answer on the socket.
type localError struct {
	Error string `json:"error"`
}

// writeLocalJSON answers v with status.
func writeLocalJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// localFail answers an error.
func localFail(w http.ResponseWriter, status int, err error) {
	writeLocalJSON(w, status, localError{Error: err.Error()})
}

// errNoLocalSocket says that nothing answers on the socket.
var errNoLocalSocket = errors.New("the running server's local socket does not answer")

// localTimeout bounds one request on the socket.
const localTimeout = time.Minute

// localGet sends GET route?query to the server on the socket at path and
// decodes its JSON answer into into. A socket nobody answers on wraps
// errNoLocalSocket; an error answer is returned as an error.
func localGet(ctx context.Context, path, route string, query url.Values, into any) error {
	hc := &http.Client{
		Timeout: localTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}
	u := "http://moonchat" + route
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w at %s: %w", errNoLocalSocket, path, op.Err)
		}
		return fmt.Errorf("local socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("local socket %s: GET %s: %w", path, route, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e localError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("local socket %s: %s", path, e.Error)
		}
		return fmt.Errorf("local socket %s: GET %s: %s (an older or newer server?)", path, route, resp.Status)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("local socket %s: GET %s: not a moonchat answer: %w", path, route, err)
	}
	return nil
}

package ws

import (
	"context"
	"net/http"
)

// HandshakeError is a refused opening handshake: the HTTP status written to
// the client and a one-line reason.
type HandshakeError struct {
	Status int
	Reason string
}

// Error implements error.
func (e *HandshakeError) Error() string { return "websocket handshake: " + e.Reason }

// IsUpgradeRequest reports whether r asks for a WebSocket upgrade.
func IsUpgradeRequest(r *http.Request) bool { return false }

// Server upgrades HTTP requests to WebSocket connections and drives them.
type Server struct{}

// NewServer returns a Server delivering events to h.
func NewServer(h Handler, cfg Config) (*Server, error) { return &Server{}, nil }

// Upgrade performs the opening handshake on w and r.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, userData any) (*Conn, error) {
	return nil, ErrServerClosed
}

// ServeHTTP upgrades r with no user data.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { _, _ = s.Upgrade(w, r, nil) }

// Len returns the number of open connections.
func (s *Server) Len() int { return 0 }

// Shutdown closes every connection with code and reason.
func (s *Server) Shutdown(ctx context.Context, code StatusCode, reason string) error { return nil }

// Close closes every connection at once.
func (s *Server) Close() error { return nil }

// Handler receives connection events.
type Handler interface {
	OnOpen(c *Conn)
	OnMessage(c *Conn, op Opcode, data []byte)
	OnClose(c *Conn, err error)
}

// Conn is one WebSocket connection.
type Conn struct{}

// UserData returns the value stored by Upgrade or SetUserData.
func (c *Conn) UserData() any { return nil }

// SetUserData stores v.
func (c *Conn) SetUserData(v any) {}

// Subprotocol returns the negotiated subprotocol.
func (c *Conn) Subprotocol() string { return "" }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() string { return "" }

// Hixie76 reports whether the connection speaks hixie-76.
func (c *Conn) Hixie76() bool { return false }

// WriteMessage writes one message.
func (c *Conn) WriteMessage(op Opcode, data []byte) error { return ErrClosed }

// WritePrepared writes p.
func (c *Conn) WritePrepared(p *Prepared) error { return ErrClosed }

// Ping sends a ping.
func (c *Conn) Ping(payload []byte) error { return ErrClosed }

// Close starts the closing handshake.
func (c *Conn) Close(code StatusCode, reason string) error { return ErrClosed }

// PauseReading stops reading.
func (c *Conn) PauseReading() {}

// ResumeReading resumes reading.
func (c *Conn) ResumeReading() {}

// Buffered returns the bytes queued.
func (c *Conn) Buffered() int { return 0 }

// Prepared is one or more encoded messages.
type Prepared struct{}

// NewPrepared encodes msgs.
func NewPrepared(op Opcode, msgs ...[]byte) *Prepared { return &Prepared{} }

// Len returns the number of messages.
func (p *Prepared) Len() int { return 0 }

//go:build !linux

package ws

import (
	"errors"
	"net"
)

// Without epoll every connection uses the goroutine driver; these stubs are
// never reached because pickLoop returns nil.

type loop struct{}

func startLoops(*Server, int) ([]*loop, error) { return nil, errNoEpoll }

func (l *loop) post(*Conn)                                    {}
func (l *loop) stop()                                         {}
func detachTCP(*net.TCPConn) (int, error)                     { return -1, errNoEpoll }
func (c *Conn) writeDirectLocked(a, b, t []byte) (int, error) { return 0, errNoEpoll }
func (c *Conn) writevDirectLocked([][]byte) (int, error)      { return 0, errNoEpoll }
func (c *Conn) epUpdateInterestLocked()                       {}
func (c *Conn) epShutdownWriteLocked()                        {}
func (c *Conn) epCloseLocked()                                {}

var errNoEpoll = errors.New("websocket: epoll not available on this platform")

//go:build !linux

package loadgen

import (
	"errors"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Outside Linux there is no epoll reader: each connection is read by a
// goroutine of its own (runner.read), and no Conn is ever detached.

type readerPool struct{}

func newReaderPool(n int) (*readerPool, error) { return nil, errors.ErrUnsupported }

func (p *readerPool) add(c *Conn, onMessage func(ws.Opcode, []byte), onEnd func(error)) error {
	return errors.ErrUnsupported
}

func (p *readerPool) stop() {}

func writeFD(fd int, b []byte, timeout time.Duration) error { return errors.ErrUnsupported }

func shutdownFD(fd int) error { return errors.ErrUnsupported }

package ws

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// The fallback driver: a reader goroutine and a writer goroutine per
// connection, over a net.Conn. It serves platforms without epoll and
// connections that are not plain TCP (TLS). The reader is the connection's
// owner; it feeds the same decoder as the epoll driver and runs the timers
// by waking up every tick through a read deadline. The writer drains the
// same queue as the epoll driver, handing all queued entries to one
// net.Buffers write (writev on TCP).

const fbReadBufSize = 16 << 10

type fbConn struct {
	nc        net.Conn
	wake      chan struct{} // cap 1: the queue has data
	resume    chan struct{} // cap 1: the reader should look at the flags again
	quit      chan struct{} // closed by finalize: the writer exits
	done      chan struct{} // closed when the writer has exited
	closeOnce sync.Once
}

func newFbConn(nc net.Conn) *fbConn {
	return &fbConn{
		nc:     nc,
		wake:   make(chan struct{}, 1),
		resume: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

func (f *fbConn) wakeWriter() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fbConn) kick() {
	select {
	case f.resume <- struct{}{}:
	default:
	}
}

// kill unblocks the reader (and the writer) so that the reader finalizes.
func (f *fbConn) kill() {
	_ = f.nc.Close()
	f.kick()
}

func (f *fbConn) shutdownWrite() {
	if cw, ok := f.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		// Wake the reader so that it reports the connection now.
		_ = f.nc.SetReadDeadline(time.Now())
		return
	}
	_ = f.nc.Close()
}

// close is called once by finalize: it closes the socket and waits for the
// writer goroutine.
func (f *fbConn) close() {
	f.closeOnce.Do(func() {
		_ = f.nc.Close()
		close(f.quit)
	})
	<-f.done
}

// fbStart starts the goroutines of a fallback connection.
func (s *Server) fbStart(c *Conn) {
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		c.fbWriter()
	}()
	go func() {
		defer s.wg.Done()
		c.fbReader()
	}()
}

func (c *Conn) fbReader() {
	defer c.finalize()
	f, s := c.fb, c.srv
	buf := make([]byte, fbReadBufSize)
	lastTick := s.now()
	for {
		c.maybeReport()
		fl := c.flags.Load()
		if fl&fDead != 0 {
			return
		}
		if len(c.pending) > 0 && fl&fPaused == 0 {
			c.process(c.pending, true)
			continue
		}
		if fl&fPaused != 0 && fl&fLinger == 0 {
			<-f.resume
			continue
		}
		_ = f.nc.SetReadDeadline(time.Now().Add(s.tick))
		n, err := f.nc.Read(buf)
		now := s.now()
		if n > 0 {
			c.lastRead = now
			c.process(buf[:n], false)
		}
		if now-lastTick >= int64(s.tick) {
			// A chatty peer never lets the read deadline expire.
			lastTick = now
			c.tick(now)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if c.flags.Load()&fDead == 0 {
				c.peerGone(err)
			}
			return
		}
	}
}

func (c *Conn) fbWriter() {
	f, s := c.fb, c.srv
	defer close(f.done)
	for {
		select {
		case <-f.wake:
		case <-f.quit:
			return
		}
		for {
			c.mu.Lock()
			if c.flags.Load()&fDead != 0 || c.qBytes == 0 {
				c.mu.Unlock()
				break
			}
			bufs := net.Buffers(c.q)
			c.q = nil
			c.mu.Unlock()
			_ = f.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			n, err := bufs.WriteTo(f.nc)
			c.mu.Lock()
			if c.flags.Load()&fDead != 0 {
				c.mu.Unlock()
				return
			}
			c.qBytes -= int(n)
			c.progress = s.now()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					c.slowConsumerLocked("write timeout")
				} else {
					c.writeFailedLocked(err)
				}
				c.mu.Unlock()
				return
			}
			if c.qBytes == 0 {
				c.q = nil
				if c.flags.Load()&(fFlushClose|fLinger) == fFlushClose {
					c.shutdownWriteLocked()
				}
			}
			c.mu.Unlock()
		}
	}
}

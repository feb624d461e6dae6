package ws

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The fallback driver: a reader goroutine per connection, and a writer
// goroutine while output is queued, over a net.Conn. It serves platforms
// without epoll and connections that are not plain TCP: TLS. The reader is
// the connection's owner; it feeds the same decoder as the epoll driver
// and runs the timers by waking up through a read deadline set to when
// the next one is due (fbSetReadDeadline).
// The writer drains the same queue as the epoll driver; it is started when
// the queue becomes non-empty and exits once it is empty again, so an idle
// connection has no writer.
//
// Why TLS is served here and not by the event loops: crypto/tls is a
// blocking, goroutine-per-connection API. Putting a TLS connection on the
// loops would mean reading ciphertext from the raw fd and feeding it to a
// tls.Conn through a fake net.Conn (whose reads report "would block" as
// timeouts), and encrypting every frame per connection into the queue
// instead of sharing Prepared bytes: it depends on how crypto/tls treats
// such errors and on where it writes (a TLS 1.3 KeyUpdate answers from
// inside Read), all to save the one goroutine per connection. Measured
// with 10,000 idle wss:// connections (BenchmarkIdleConnMemoryTLS in
// core/ws/interop), that goroutine's stack is 4 KB of the 13 KB a
// connection costs; crypto/tls's own state is most of the rest (about
// 3.4 KB of handshake and record buffers it keeps, 1.4 KB of AES-GCM
// state, 0.7 KB for the tls.Conn), and the loops would not save that.
// Here the costs of the driver are kept down instead:
//
//   - no writer goroutine while nothing is queued;
//   - no wake-up while no timer is due: an idle connection's reader sleeps
//     until its keepalive ping, not one timer tick;
//   - no read buffer while idle: the reader of a TLS connection blocks in
//     a one-byte Read (crypto/tls decrypts the whole record into its own
//     buffer), then borrows a pooled buffer for the rest of what crypto/tls
//     already holds, read with a deadline in the past so that it cannot
//     block (crypto/tls keeps the connection usable after a timeout), and
//     gives it back;
//   - frames queued for a TLS connection are copied into record-sized
//     writes (net.Buffers would encrypt each small frame as a record of
//     its own, with its own write system call).

const (
	fbReadBufSize = 16 << 10
	// tlsRecordBytes is the most plaintext one TLS record carries
	// (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
	tlsRecordBytes = 16 << 10
)

type fbConn struct {
	c      *Conn
	nc     net.Conn
	tls    bool          // nc is a *tls.Conn: lean reads, gathered writes
	resume chan struct{} // cap 1: the reader should look at the flags again
	one    [1]byte       // a TLS reader blocks reading into this

	// Guarded by c.mu: whether a writer goroutine runs. writer counts
	// it, so that close can wait for it.
	writing bool
	writer  sync.WaitGroup
	// timerGen counts changes to the connection's timers made while the
	// reader may be blocked (guarded by c.mu; see fbWaitUntil).
	timerGen uint32

	closeOnce sync.Once
}

func newFbConn(c *Conn, nc net.Conn) *fbConn {
	_, isTLS := nc.(*tls.Conn)
	return &fbConn{
		c:      c,
		nc:     nc,
		tls:    isTLS,
		resume: make(chan struct{}, 1),
	}
}

// wakeWriter starts the writer unless it runs (called with c.mu held, after
// queueing). A connection being torn down gets no new writer.
func (f *fbConn) wakeWriter() {
	c := f.c
	if f.writing || c.flags.Load()&fDead != 0 {
		return
	}
	f.writing = true
	f.writer.Add(1)
	// The reader is alive (the connection is not dead), so the server's
	// wait group is not at zero: Add cannot race with stop's Wait.
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		defer f.writer.Done()
		c.fbWriter()
	}()
}

// timersChangedLocked is called (with c.mu held) when a timer the reader
// does not know of may be due sooner than its read deadline: the closing
// deadline of Close or of the final flush. The reader is woken to look
// again.
func (f *fbConn) timersChangedLocked() {
	f.timerGen++
	_ = f.nc.SetReadDeadline(time.Now())
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

// close is called once by finalize (the connection is dead: no writer
// starts any more): it closes the socket, which ends a write in progress,
// and waits for the writer goroutine if one runs.
func (f *fbConn) close() {
	f.closeOnce.Do(func() {
		_ = f.nc.Close()
	})
	f.writer.Wait()
}

// fbStart starts the reader of a fallback connection; the writer starts
// with the first queued output (wakeWriter).
func (s *Server) fbStart(c *Conn) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.fbReader()
	}()
}

func (c *Conn) fbReader() {
	defer c.finalize()
	f, s := c.fb, c.srv
	var buf []byte
	if !f.tls {
		buf = make([]byte, fbReadBufSize)
	}
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
		c.fbSetReadDeadline(lastTick)
		var n int
		var err error
		if f.tls {
			n, err = f.nc.Read(f.one[:])
		} else {
			n, err = f.nc.Read(buf)
		}
		now := s.now()
		if n > 0 {
			c.lastRead = now
			if f.tls {
				err = c.fbProcessTLS(err)
			} else {
				c.process(buf[:n], false)
			}
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

// fbMaxWait bounds a reader's wait when no timer is due at all (no
// keepalive, no idle timeout).
const fbMaxWait = time.Minute

// fbSetReadDeadline sets the reader's read deadline to when the
// connection's timers are next due (see tick), and no sooner than a tick
// after lastTick: an idle connection then wakes for its keepalive ping,
// not every tick (10,000 idle TLS connections woke 10,000 times a second,
// a quarter of a core, for nothing). Other goroutines change only the
// closing deadline; they bump timerGen and wake the reader
// (timersChangedLocked), and a change that raced with this call is seen
// here after the deadline is set.
func (c *Conn) fbSetReadDeadline(lastTick int64) {
	f, s, cfg := c.fb, c.srv, &c.srv.cfg
	now := s.now()
	due := now + int64(fbMaxWait)
	c.mu.Lock()
	gen := f.timerGen
	if c.deadline != 0 {
		due = min(due, c.deadline)
	}
	if c.qBytes > 0 {
		due = min(due, c.progress+int64(cfg.WriteTimeout))
	}
	c.mu.Unlock()
	fl := c.flags.Load()
	if fl&(fSentClose|fPaused) == 0 {
		if cfg.IdleTimeout > 0 {
			due = min(due, c.lastRead+int64(cfg.IdleTimeout))
		}
		if cfg.PingInterval > 0 && fl&fHixie == 0 {
			if c.pingSent > c.lastRead {
				due = min(due, c.pingSent+int64(cfg.PingTimeout))
			} else {
				due = min(due, max(c.lastRead, c.pingSent)+int64(cfg.PingInterval))
			}
		}
	}
	due = max(due, lastTick+int64(s.tick)) // tick runs at most once a tick
	_ = f.nc.SetReadDeadline(time.Now().Add(time.Duration(due - now)))
	c.mu.Lock()
	if f.timerGen != gen {
		_ = f.nc.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
}

// fbProcessTLS follows the one byte a TLS reader received: it borrows a
// buffer, fills it with what crypto/tls has already decrypted or buffered
// (a Read with a deadline in the past returns that, or a timeout, without
// blocking), decodes it and gives the buffer back. It returns err, the
// error that came with the byte, or the error that ended the connection.
func (c *Conn) fbProcessTLS(err error) error {
	f, s := c.fb, c.srv
	bp, _ := s.fbBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, fbReadBufSize)
		bp = &b
	}
	b := *bp
	b[0] = f.one[0]
	n := 1
	if err == nil {
		_ = f.nc.SetReadDeadline(time.Unix(1, 0))
		for n < len(b) {
			k, rerr := f.nc.Read(b[n:])
			n += k
			if rerr != nil {
				if !errors.Is(rerr, os.ErrDeadlineExceeded) {
					err = rerr
				}
				break
			}
		}
	}
	c.process(b[:n], false)
	s.fbBufs.Put(bp)
	return err
}

// fbWriter drains the queue, then exits (wakeWriter starts it again).
func (c *Conn) fbWriter() {
	f, s := c.fb, c.srv
	var rec *[]byte // TLS: the record being gathered, borrowed
	defer func() {
		if rec != nil {
			s.fbBufs.Put(rec)
		}
	}()
	for {
		c.mu.Lock()
		if c.flags.Load()&fDead != 0 || c.qBytes == 0 {
			f.writing = false
			c.mu.Unlock()
			return
		}
		bufs := net.Buffers(c.q)
		c.q = nil
		c.mu.Unlock()
		_ = f.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		var n int64
		var err error
		if f.tls {
			if rec == nil {
				if rec, _ = s.fbBufs.Get().(*[]byte); rec == nil {
					b := make([]byte, tlsRecordBytes)
					rec = &b
				}
			}
			n, err = writeGathered(f.nc, bufs, *rec)
		} else {
			n, err = bufs.WriteTo(f.nc)
		}
		c.mu.Lock()
		if c.flags.Load()&fDead != 0 {
			f.writing = false
			c.mu.Unlock()
			return
		}
		c.qBytes -= int(n)
		c.progress = s.now()
		if err != nil {
			f.writing = false
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

// writeGathered writes bufs to w in writes of up to len(rec) bytes, copying
// small buffers together into rec (a TLS connection then sends one record
// per write instead of one per frame); a buffer at least as long as rec is
// written as it is. It returns the bytes written.
func writeGathered(w io.Writer, bufs [][]byte, rec []byte) (int64, error) {
	var total int64
	for len(bufs) > 0 {
		var out []byte
		if len(bufs[0]) >= len(rec) {
			out, bufs = bufs[0], bufs[1:]
		} else {
			k := 0
			for len(bufs) > 0 && k < len(rec) {
				m := copy(rec[k:], bufs[0])
				k += m
				if m == len(bufs[0]) {
					bufs = bufs[1:]
				} else {
					bufs[0] = bufs[0][m:]
				}
			}
			out = rec[:k]
		}
		n, err := w.Write(out)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

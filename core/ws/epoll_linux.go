//go:build linux

package ws

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/moonchat/moonchat/internal/epoll"
)

// The epoll driver. Each loop is one epoll instance, one goroutine and one
// 64 KiB read buffer shared by all of its connections; there is no goroutine
// per connection.
//
// Readiness is level-triggered: a loop reads at most one buffer per
// connection per wakeup (fair to the others) and epoll reports the rest
// again. Interest is kept exact instead: EPOLLIN is dropped while reading is
// paused and EPOLLOUT is armed only while a connection has queued output, so
// level triggering never spins.
//
// Socket ownership: the loop goroutine alone closes a connection's fd, under
// the connection's lock, after removing it from epoll, and sets fd to -1;
// every other syscall on the fd is made either by the loop goroutine or under
// the lock after checking fd >= 0. So no syscall can hit a reused fd number.

const (
	readBufSize = 64 << 10
	evIn        = unix.EPOLLIN | unix.EPOLLRDHUP
	evOut       = unix.EPOLLOUT
)

type loop struct {
	srv   *Server
	ep    epoll.Instance // epfd and evfd, set up as the load generator's loops are
	epfd  int
	evfd  int // eventfd: wakes the loop for posted work and for stopping
	done  chan struct{}
	conns map[int32]*Conn // loop goroutine only

	mu       sync.Mutex
	tasks    []*Conn
	stopping bool
	stopped  bool
}

func newLoop(s *Server) (*loop, error) {
	in, err := epoll.New()
	if err != nil {
		return nil, err
	}
	return &loop{srv: s, ep: in, epfd: in.EpFD, evfd: in.EvFD, done: make(chan struct{}), conns: make(map[int32]*Conn)}, nil
}

// startLoops creates and starts n event loops.
func startLoops(s *Server, n int) ([]*loop, error) {
	loops := make([]*loop, 0, n)
	for i := 0; i < n; i++ {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range loops {
				l.stop()
			}
			return nil, err
		}
		loops = append(loops, l)
		go l.run()
	}
	return loops, nil
}

// wake makes epoll_wait return.
func (l *loop) wake() { l.ep.Wake() }

// post queues c for the loop's attention (registration, pending input,
// teardown). After the loop has stopped, the connection is finalized on the
// caller's goroutine, since no owner is left.
func (l *loop) post(c *Conn) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		if c.flags.Load()&fRegistered == 0 {
			// The loop never took this connection over; finalize it on
			// a goroutine of its own, as our caller may hold c.mu. The
			// server's drain wait covers it.
			go c.finalize()
		}
		return
	}
	first := len(l.tasks) == 0
	l.tasks = append(l.tasks, c)
	l.mu.Unlock()
	if first {
		l.wake()
	}
}

// stop makes the loop finalize its connections and exit, and waits for it.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wake()
	<-l.done
}

func (l *loop) run() {
	s := l.srv
	buf := make([]byte, readBufSize)
	events := make([]unix.EpollEvent, 128)
	var tasks []*Conn
	nextSweep := s.now() + int64(s.tick)
	for {
		wait := int((nextSweep - s.now()) / 1e6)
		wait = max(wait, 1)
		n, err := unix.EpollWait(l.epfd, events, wait)
		if err != nil && !errors.Is(err, unix.EINTR) {
			s.log.Error("websocket: epoll_wait failed; stopping event loop", "err", err)
			break
		}
		now := s.now()
		for i := 0; i < n; i++ {
			ev := &events[i]
			if int(ev.Fd) == l.evfd {
				l.ep.Drain()
				continue
			}
			c := l.conns[ev.Fd]
			if c == nil {
				continue // finalized earlier in this batch
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.epFlush()
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.epRead(now, buf, ev.Events)
			}
			c.maybeReport()
		}
		l.mu.Lock()
		tasks, l.tasks = l.tasks, tasks[:0]
		stopping := l.stopping
		l.mu.Unlock()
		for i, c := range tasks {
			c.epService()
			tasks[i] = nil
		}
		if stopping {
			break
		}
		if now >= nextSweep {
			for _, c := range l.conns {
				c.tick(now)
			}
			nextSweep = now + int64(s.tick)
		}
	}
	// Stopping: no owner will be left, so finalize everything here. Posts
	// that arrive from now on finalize unregistered connections themselves;
	// registered ones are all in l.conns and finalized below.
	l.mu.Lock()
	l.stopped = true
	tasks, l.tasks = l.tasks, nil
	l.mu.Unlock()
	for _, c := range tasks {
		c.kill(&CloseError{Code: StatusAbnormalClosure, Reason: "server closed"})
		c.finalize()
	}
	for _, c := range l.conns {
		c.kill(&CloseError{Code: StatusAbnormalClosure, Reason: "server closed"})
		c.finalize()
	}
	unix.Close(l.epfd)
	unix.Close(l.evfd)
	close(l.done)
}

// detachTCP takes the socket out of Go's runtime: it duplicates the fd
// (close-on-exec) and closes the net.Conn; the duplicate shares the open
// file description, which Go already made non-blocking.
func detachTCP(tc *net.TCPConn) (int, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup socket: %w", derr)
	}
	tc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, nil
}

// epService handles a posted connection on the loop goroutine.
func (c *Conn) epService() {
	fl := c.flags.Load()
	if fl&fFinal != 0 {
		return
	}
	if fl&fDead != 0 {
		c.finalize()
		return
	}
	if fl&fRegistered == 0 {
		c.mu.Lock()
		ev := unix.EpollEvent{Events: c.interestLocked(), Fd: c.fd}
		err := unix.EpollCtl(c.lp.epfd, unix.EPOLL_CTL_ADD, int(c.fd), &ev)
		if err == nil {
			c.setFlagLocked(fRegistered, true)
			c.setFlagLocked(fInArmed, ev.Events&unix.EPOLLIN != 0)
			c.setFlagLocked(fOutArmed, ev.Events&unix.EPOLLOUT != 0)
			c.lp.conns[c.fd] = c
		} else {
			c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "epoll_ctl: " + err.Error()})
		}
		c.mu.Unlock()
		if err != nil {
			c.finalize()
			return
		}
	}
	if len(c.pending) > 0 && c.flags.Load()&fPaused == 0 {
		c.process(c.pending, true)
	}
	c.maybeReport()
}

// epRead handles input readiness on the loop goroutine.
func (c *Conn) epRead(now int64, buf []byte, events uint32) {
	fl := c.flags.Load()
	if fl&fDead != 0 {
		c.finalize()
		return
	}
	if len(c.pending) > 0 && fl&fPaused == 0 {
		c.process(c.pending, true)
		fl = c.flags.Load()
	}
	if fl&fPaused != 0 || len(c.pending) > 0 {
		if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.peerGone(errors.New("connection lost while paused"))
		}
		return
	}
	// The loop goroutine owns the fd: no lock needed to read it.
	n, err := unix.Read(int(c.fd), buf)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return
		}
		c.peerGone(err)
		return
	}
	if n == 0 {
		c.peerGone(nil)
		return
	}
	c.lastRead = now
	c.process(buf[:n], false)
	if c.flags.Load()&fDead != 0 {
		c.finalize()
	}
}

// epFlush writes queued output on EPOLLOUT.
func (c *Conn) epFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags.Load()&fDead != 0 || c.fd < 0 {
		return
	}
	for c.qBytes > 0 {
		q := c.q
		if len(q) > 1024 { // IOV_MAX
			q = q[:1024]
		}
		n, err := unix.Writev(int(c.fd), q)
		if n > 0 {
			c.dequeueLocked(n)
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			c.writeFailedLocked(err)
			return
		}
	}
	if c.qBytes == 0 && c.flags.Load()&(fFlushClose|fLinger) == fFlushClose {
		c.shutdownWriteLocked()
	}
	c.updateInterestLocked()
}

// writeDirectLocked writes a|b|t from the caller's goroutine; it returns the
// bytes written (EAGAIN is not an error).
func (c *Conn) writeDirectLocked(a, b, t []byte) (int, error) {
	if c.fd < 0 {
		return 0, ErrClosed
	}
	var n int
	var err error
	for {
		switch {
		case len(b) == 0 && len(t) == 0:
			n, err = unix.Write(int(c.fd), a)
		case len(a) == 0 && len(t) == 0:
			n, err = unix.Write(int(c.fd), b)
		default:
			iov := [3][]byte{a, b, t}
			n, err = unix.Writev(int(c.fd), iov[:])
		}
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return 0, nil
		}
		return 0, err
	}
	return n, nil
}

// writevDirectLocked writes bufs with one writev from the caller's
// goroutine; it returns the bytes written (EAGAIN is not an error).
func (c *Conn) writevDirectLocked(bufs [][]byte) (int, error) {
	if c.fd < 0 {
		return 0, ErrClosed
	}
	for {
		n, err := unix.Writev(int(c.fd), bufs)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		default:
			return 0, err
		}
	}
}

// interestLocked computes the epoll events the connection waits for.
func (c *Conn) interestLocked() uint32 {
	fl := c.flags.Load()
	var ev uint32
	if fl&fPaused == 0 || fl&fLinger != 0 {
		ev |= evIn
	}
	if c.qBytes > 0 {
		ev |= evOut
	}
	return ev
}

func (c *Conn) epUpdateInterestLocked() {
	fl := c.flags.Load()
	if fl&fRegistered == 0 || fl&fDead != 0 || c.fd < 0 {
		return
	}
	want := c.interestLocked()
	var have uint32
	if fl&fInArmed != 0 {
		have |= evIn
	}
	if fl&fOutArmed != 0 {
		have |= evOut
	}
	if want == have {
		return
	}
	ev := unix.EpollEvent{Events: want, Fd: c.fd}
	if err := unix.EpollCtl(c.lp.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &ev); err != nil {
		c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "epoll_ctl: " + err.Error()})
		return
	}
	c.setFlagLocked(fInArmed, want&evIn != 0)
	c.setFlagLocked(fOutArmed, want&evOut != 0)
}

func (c *Conn) epShutdownWriteLocked() {
	if c.fd >= 0 {
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
}

// epCloseLocked removes the socket from epoll and closes it, exactly once.
func (c *Conn) epCloseLocked() {
	if c.fd < 0 {
		return
	}
	if c.flags.Load()&fRegistered != 0 {
		_ = unix.EpollCtl(c.lp.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
		delete(c.lp.conns, c.fd)
		c.setFlagLocked(fRegistered, false)
	}
	unix.Close(int(c.fd))
	c.fd = -1
}

//go:build linux

package loadgen

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moonchat/moonchat/core/ws"
	"github.com/moonchat/moonchat/internal/epoll"
)

// The epoll receive path. A readerPool owns a few loops (one per
// GOMAXPROCS), each one goroutine with its own epoll instance, eventfd and
// 64 KiB read buffer shared by all of its connections. A loop makes one
// read per readiness and pushes the bytes into the connection's parser
// (feed), which delivers the messages in place: no goroutine per
// connection, no wake-up per message, no second read that returns EAGAIN.
//
// Readiness is level-triggered: bytes left unread are reported again.
//
// A loop never blocks in epoll_wait: its epoll fd is itself registered
// with the Go runtime's netpoller (an epoll fd is pollable), the loop
// goroutine parks there and calls epoll_wait with a zero timeout when
// woken. A goroutine blocked in a syscall would instead keep sysmon
// retaking its P and handing it off on every wait (measured: about a
// fifth of the tool's CPU at 100k deliveries/s). Stopping writes the
// eventfd, which wakes the loop the same way.
//
// Socket ownership: add duplicates the socket and closes the net.Conn, so
// the Go runtime no longer polls it. The loop goroutine alone closes the
// duplicate, under the Conn's write lock, after removing it from epoll, and
// sets Conn.fd to -1; writers use the fd under that lock and only when it
// is >= 0. So no syscall can hit a reused fd number. Conn.Close only shuts
// the socket down; the loop then reads the end of the stream and closes it.

const readBufSize = 64 << 10

// readerPool is the set of reader loops of one run.
type readerPool struct {
	loops    []*readLoop
	next     atomic.Uint32
	stopOnce sync.Once
}

// readReg is one connection registered with a loop, and where its
// messages and its end go. onMessage and onEnd run on the loop goroutine
// (onEnd exactly once, last); they must not block for long.
type readReg struct {
	c         *Conn
	fd        int
	leftover  []byte // bytes read ahead (at the handshake, or by ReadMessage)
	onMessage func(op ws.Opcode, data []byte)
	onEnd     func(err error)
}

// readLoop is one epoll instance and its goroutine.
type readLoop struct {
	ep         epoll.Instance // the same setup as core/ws's event loops
	epfd, evfd int
	epf        *os.File // owns epfd; polled by the Go runtime
	buf        []byte
	regs       map[int32]*readReg // loop goroutine only
	done       chan struct{}

	mu       sync.Mutex
	adds     []*readReg
	stopping bool
	stopped  bool
}

// newReaderPool starts n reader loops.
func newReaderPool(n int) (*readerPool, error) {
	p := &readerPool{}
	for range max(n, 1) {
		l, err := newReadLoop()
		if err != nil {
			p.stop()
			return nil, err
		}
		p.loops = append(p.loops, l)
		go l.run()
	}
	return p, nil
}

func newReadLoop() (*readLoop, error) {
	in, err := epoll.New()
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(in.EpFD, true); err != nil {
		in.Close(false)
		return nil, fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	return &readLoop{ep: in, epfd: in.EpFD, evfd: in.EvFD, epf: os.NewFile(uintptr(in.EpFD), "epoll"),
		buf: make([]byte, readBufSize), regs: make(map[int32]*readReg), done: make(chan struct{})}, nil
}

// add hands c to one of the loops, which from then on reads it and calls
// onMessage for each data message and onEnd once when reading ends (the
// server's close frame as a *CloseError, a protocol error, the end of the
// stream, errReaderStopped). Bytes already read ahead at the handshake are
// parsed first. On an error nothing was changed: c can still be read with
// ReadMessage.
func (p *readerPool) add(c *Conn, onMessage func(ws.Opcode, []byte), onEnd func(error)) error {
	c.wmu.Lock()
	if c.detached {
		c.wmu.Unlock()
		return fmt.Errorf("add to reader: %w", ErrConnClosed)
	}
	fd, err := dupSocket(c.nc)
	if err != nil {
		c.wmu.Unlock()
		return err
	}
	leftover := c.readAhead()
	_ = c.nc.Close() // the duplicate keeps the socket open
	c.br, c.src = nil, nil
	c.detached, c.fd = true, fd
	c.wmu.Unlock()

	reg := &readReg{c: c, fd: fd, leftover: leftover, onMessage: onMessage, onEnd: onEnd}
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	if !l.post(reg) {
		// The pool is stopped: no loop will ever own it.
		finish(reg, errReaderStopped)
	}
	return nil
}

// stop ends every connection still registered (errReaderStopped) and
// waits for the loops to exit.
func (p *readerPool) stop() {
	p.stopOnce.Do(func() {
		for _, l := range p.loops {
			l.mu.Lock()
			l.stopping = true
			if !l.stopped {
				l.wakeLocked()
			}
			l.mu.Unlock()
		}
		for _, l := range p.loops {
			<-l.done
		}
	})
}

// dupSocket duplicates nc's socket (close-on-exec) and makes the duplicate
// non-blocking. nc itself is left as it is.
func dupSocket(nc any) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("detach socket: %T has no file descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("detach socket: %w", err)
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("detach socket: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("dup socket: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, nil
}

// post queues reg for registration; false when the loop has stopped.
func (l *readLoop) post(reg *readReg) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.adds = append(l.adds, reg)
	if len(l.adds) == 1 {
		l.wakeLocked()
	}
	return true
}

// wakeLocked makes epoll_wait return; l.mu is held, so evfd is open.
func (l *readLoop) wakeLocked() { l.ep.Wake() }

func (l *readLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 256)
	rc, err := l.epf.SyscallConn()
	if err != nil {
		l.shutdown(fmt.Errorf("epoll fd: %w", err))
		return
	}
	var n int
	var werr error
	// poll returns true once events are ready (or epoll_wait failed);
	// false makes rc.Read park the goroutine until the epoll fd is
	// readable. The runtime watches it edge-triggered, which is why the
	// loop only parks after an epoll_wait that found nothing.
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
			return true // poll again rather than park: events may be ready
		}
		return n > 0 || werr != nil
	}
	for {
		if err := rc.Read(poll); err != nil {
			l.shutdown(fmt.Errorf("wait on epoll fd: %w", err))
			return
		}
		if werr != nil {
			l.shutdown(fmt.Errorf("epoll_wait: %w", werr))
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(l.evfd) {
				if l.tasks() {
					l.shutdown(errReaderStopped)
					return
				}
				continue
			}
			if reg := l.regs[ev.Fd]; reg != nil {
				l.service(reg)
			}
		}
	}
}

// tasks registers the posted connections; it reports whether to stop.
func (l *readLoop) tasks() bool {
	l.ep.Drain()
	l.mu.Lock()
	adds, stopping := l.adds, l.stopping
	l.adds = nil
	l.mu.Unlock()
	for _, reg := range adds {
		l.register(reg)
	}
	return stopping
}

// register parses reg's read-ahead bytes, then starts polling its socket.
func (l *readLoop) register(reg *readReg) {
	if len(reg.leftover) > 0 {
		err := reg.c.feed(reg.leftover, reg.onMessage)
		reg.leftover = nil
		if err != nil {
			finish(reg, err)
			return
		}
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(reg.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, reg.fd, &ev); err != nil {
		finish(reg, fmt.Errorf("epoll_ctl: %w", err))
		return
	}
	l.regs[int32(reg.fd)] = reg
}

// service makes one read from a ready socket and parses what came.
func (l *readLoop) service(reg *readReg) {
	n, err := unix.Read(reg.fd, l.buf)
	switch {
	case n > 0:
		if err := reg.c.feed(l.buf[:n], reg.onMessage); err != nil {
			l.end(reg, err)
		}
	case n == 0:
		l.end(reg, reg.c.eofError())
	case err == unix.EAGAIN || err == unix.EINTR:
		// Level-triggered: epoll reports it again if need be.
	default:
		l.end(reg, fmt.Errorf("read: %w", err))
	}
}

// end stops polling reg's socket and finishes it.
func (l *readLoop) end(reg *readReg, err error) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, reg.fd, nil)
	delete(l.regs, int32(reg.fd))
	finish(reg, err)
}

// shutdown ends every connection of the loop and releases its fds.
func (l *readLoop) shutdown(err error) {
	l.mu.Lock()
	l.stopped = true
	adds := l.adds
	l.adds = nil
	unix.Close(l.evfd)
	l.mu.Unlock()
	for _, reg := range adds {
		finish(reg, err)
	}
	for _, reg := range l.regs {
		l.end(reg, err)
	}
	l.epf.Close()
}

// finish closes reg's socket and reports the end of reading.
func finish(reg *readReg, err error) {
	c := reg.c
	c.wmu.Lock()
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	c.wmu.Unlock()
	reg.onEnd(err)
}

// writeFD writes b whole to the non-blocking socket fd, waiting for room
// with poll(2) for at most timeout in all.
func writeFD(fd int, b []byte, timeout time.Duration) error {
	var deadline time.Time
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		switch err {
		case unix.EINTR:
		case unix.EAGAIN:
			if deadline.IsZero() {
				deadline = time.Now().Add(timeout)
			}
			wait := time.Until(deadline)
			if wait <= 0 {
				return os.ErrDeadlineExceeded
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return fmt.Errorf("poll: %w", err)
			}
		case nil:
			return fmt.Errorf("write returned 0 of %d bytes", len(b))
		default:
			return err
		}
	}
	return nil
}

// shutdownFD shuts the socket down both ways; its reader loop then reads
// the end of the stream.
func shutdownFD(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) }

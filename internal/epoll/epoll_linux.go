package epoll

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Instance is an epoll file descriptor (close-on-exec) with an eventfd
// (non-blocking, close-on-exec) registered on it for EPOLLIN,
// level-triggered: a Wake stays reported until the loop calls Drain.
type Instance struct {
	EpFD int // the epoll instance
	EvFD int // the eventfd; events with Fd == EvFD are wake-ups
}

// New creates an Instance; on error nothing is left open.
func New() (Instance, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return Instance{}, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return Instance{}, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return Instance{}, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	return Instance{EpFD: epfd, EvFD: evfd}, nil
}

// Wake makes the loop's epoll_wait return (safe from any goroutine).
func (in Instance) Wake() {
	one := [8]byte{1}
	_, _ = unix.Write(in.EvFD, one[:])
}

// Drain resets the eventfd after a wake-up, so that it is not reported
// again until the next Wake.
func (in Instance) Drain() {
	var b [8]byte
	_, _ = unix.Read(in.EvFD, b[:])
}

// Close closes the eventfd and, unless keepEpoll (its owner closes it,
// e.g. through an *os.File), the epoll instance.
func (in Instance) Close(keepEpoll bool) {
	if !keepEpoll {
		unix.Close(in.EpFD)
	}
	unix.Close(in.EvFD)
}

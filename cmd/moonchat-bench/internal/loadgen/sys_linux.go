//go:build linux

package loadgen

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// dialControl sets IP_BIND_ADDRESS_NO_PORT on sockets bound to a source
// address before connect: the kernel then picks the port at connect time
// per (source, destination) pair instead of reserving one per bind, so
// many source addresses multiply the usable ports.
func dialControl(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// raiseFileLimit raises RLIMIT_NOFILE so that want descriptors fit: the
// soft limit to the hard one, and the hard one too when allowed (root, up
// to fs.nr_open). It returns the soft limit in effect.
func raiseFileLimit(want uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if lim.Max < want {
		// Only a privileged process can raise the hard limit; try.
		raised := unix.Rlimit{Cur: want, Max: want}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			return want, nil
		}
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < want {
		return lim.Cur, fmt.Errorf("open file limit %d is below the %d needed", lim.Cur, want)
	}
	return lim.Cur, nil
}

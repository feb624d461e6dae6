package main

import (
	"net"
	"net/http"
	"os/user"
	"strconv"
	"syscall"
)

// peerUser names the user of the process on the other end of a request
// on the local socket (SO_PEERCRED): its login name, or "uid N" when the
// system has no name for it; "unknown" when the credentials cannot be
// read. Only for the audit log: the socket's mode already decided who may
// connect.
func peerUser(r *http.Request) string {
	c, ok := r.Context().Value(localConnKey{}).(*net.UnixConn)
	if !ok {
		return "unknown"
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return "unknown"
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return "unknown"
	}
	uid := strconv.FormatUint(uint64(cred.Uid), 10)
	if u, err := user.LookupId(uid); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + uid
}

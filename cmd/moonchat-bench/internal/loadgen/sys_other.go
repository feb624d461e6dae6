//go:build !linux

package loadgen

import "syscall"

// dialControl does nothing outside Linux.
func dialControl(network, address string, rc syscall.RawConn) error { return nil }

// raiseFileLimit is a no-op outside Linux.
func raiseFileLimit(want uint64) (uint64, error) { return want, nil }

//go:build !linux

package main

import "net/http"

// peerUser names the user of the process on the other end of a request on
// the local socket; on this system moonchat does not read peer
// credentials, so the audit log says "unknown" (the socket's mode decided
// who may connect: the server's user).
func peerUser(*http.Request) string { return "unknown" }

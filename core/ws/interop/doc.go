// Package interop holds moonchat's WebSocket interoperability tests: the
// engine in package ws driven by clients nobody on this team wrote
// (github.com/gorilla/websocket, github.com/coder/websocket, headless
// Chromium through github.com/chromedp/chromedp) and by hand-written raw HTTP
// requests, plus the echo and idle-memory benchmarks that compare the engine
// with gorilla/websocket.
//
// The package has no non-test code: the client libraries are test-only
// imports, so nothing here reaches the moonchat binary. The RFC 6455
// conformance run with the Autobahn TestSuite lives outside the repository
// (see the conformance report); these tests are the in-repo, `go test`-able
// part of the same concern.
package interop

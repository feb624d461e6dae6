// Package loadgen is the load generator behind cmd/moonchat-bench: it
// connects N clients to one broadcast room, has K of them send, and
// measures what every member receives (latency percentiles, loss,
// reordering, the server's CPU and memory), ending in a Summary. It owns
// its receive path (a goroutine per client, or on Linux a few epoll loops
// for all of them) and, in its tests, the side-by-side run against a gws
// baseline that writes docs/performance.md (BenchmarkSideBySide, `make bench`).
package loadgen

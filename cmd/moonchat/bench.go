package main

import (
	"context"
	"errors"
	"io"
)

// errBenchMoved is what "moonchat bench" answers: the load generator is
// not part of the server binary any more.
var errBenchMoved = errors.New("the load generator moved to its own command: run `go run ./cmd/moonchat-bench [flags]` from the source tree (same flags and JSON summary), or build it with `go build ./cmd/moonchat-bench`")

// runBench is "moonchat bench", kept as a pointer to cmd/moonchat-bench:
// it ignores its arguments and fails (exit 1), saying where the load
// generator went, so that a script calling it stops instead of silently
// measuring nothing.
func runBench(_ context.Context, _ []string, _, _ io.Writer) error {
	return errBenchMoved
}

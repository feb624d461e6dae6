package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchMoved checks that "moonchat bench" says where the load
// generator went and exits 1 (a script using it must not go on as if it
// had measured something), whatever its flags.
func TestBenchMoved(t *testing.T) {
	for _, args := range [][]string{{"bench"}, {"bench", "-clients", "10", "-url", "ws://127.0.0.1:1/chat/x"}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "go run ./cmd/moonchat-bench") || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 naming cmd/moonchat-bench", args, code, stdout.String(), stderr.String())
		}
	}
}

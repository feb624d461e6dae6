package main

import (
	"context"
	"errors"
	"io"
)

// runBench is being written; this placeholder keeps the package building.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}

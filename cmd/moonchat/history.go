package main

import (
	"context"
	"errors"
	"io"
)

// runHistory is being written; this placeholder keeps the package building.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}

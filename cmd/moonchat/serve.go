package main

import (
	"context"
	"errors"
	"io"
)

// runServe is being written; this placeholder keeps the package building.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}

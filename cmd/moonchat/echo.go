package main

import (
	"context"
	"errors"
	"io"
)

// runEcho is being written; this placeholder keeps the package building.
func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}

package main

import (
	"context"
	"errors"
	"io"
)

// runCheck is being written; this placeholder keeps the package building.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/moonchat/moonchat/store"
)

// verifyFlagsAlone refuses flags given with -verify: it checks the whole
// file, so filters, listings and deletions do not combine with it.
func verifyFlagsAlone(fset *flag.FlagSet) error {
	var others []string
	fset.Visit(func(fl *flag.Flag) {
		if fl.Name != "verify" && fl.Name != "config" {
			others = append(others, "-"+fl.Name)
		}
	})
	if len(others) > 0 {
		return fmt.Errorf("-verify checks the whole file and takes no other flag than -config (got %s)", strings.Join(others, " "))
	}
	return nil
}

// historyVerify is "moonchat history -verify": it reads every record of
// the store file (which needs the server stopped: the server holds the
// file), prints each problem on a line of its own and a summary, and fails
// (exit 1) when it found any or could not read everything. Cancelling ctx
// (SIGINT/SIGTERM) stops the scan at once: it then says what it had read
// and fails with "interrupted".
func historyVerify(ctx context.Context, cfg *Config, stdout io.Writer) error {
	path := cfg.Store.Path
	opts := storeOptions(cfg, nil, true)
	// Open's spot check logs the bad records it meets; Verify reports
	// every one of them below, so the log would only say it twice.
	opts.Logger = slog.New(slog.DiscardHandler)
	db, err := store.OpenReadOnly(path, opts)
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%s is in use by a running server: -verify reads the whole file itself; stop the server, run this again, then start it", path)
	case errors.Is(err, store.ErrNotExist):
		return fmt.Errorf("%w: nothing to verify", err)
	case err != nil:
		return explainStoreError(err)
	}
	defer db.Close()
	prefix := store.ErrCorrupt.Error() + ": "
	st, err := db.Verify(ctx, func(p error) {
		var c *store.CorruptRecord
		if errors.As(p, &c) {
			fmt.Fprintf(stdout, "corrupt record: room %s id %d: %s\n", escapeLine(c.Room), c.ID, escapeLine(strings.TrimPrefix(c.Err.Error(), prefix)))
			return
		}
		fmt.Fprintf(stdout, "problem: %s\n", escapeLine(strings.TrimPrefix(p.Error(), prefix)))
	})
	fmt.Fprintf(stdout, "verified %s: %d room(s), %d record(s): %d corrupt record(s), %d other problem(s)\n",
		path, st.Rooms, st.Records, st.Corrupt, st.Problems)
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("verification did not finish: %w", interrupted(ctx))
	case err != nil:
		return fmt.Errorf("verification did not finish: %w", err)
	case !st.OK():
		return fmt.Errorf("%s failed verification: %d corrupt record(s), %d other problem(s) (a running server skips corrupt records and logs them; to drop them for good, delete them with -delete ID -room ROOM, or restore a backup)",
			path, st.Corrupt, st.Problems)
	}
	return nil
}

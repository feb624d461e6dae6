package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/moonchat/moonchat/scripting"
)

// runCheck is "moonchat check": validate the config file and the Lua
// scripts it points at, without opening the store or listening. It prints
// "ok" on success; otherwise the returned error lists every problem found
// (config errors name their key) and the process exits 1.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("check", "[-config FILE]", stderr)
	configPath := fset.String("config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if cfg.Scripting.Enabled {
		// Scripts' own log lines (e.g. print at load time) go to stderr
		// so that stdout is exactly "ok".
		logger := slog.New(slog.NewTextHandler(stderr, nil))
		fsys, _ := scriptsFS(cfg, slog.New(slog.DiscardHandler))
		if err := scripting.Check(fsys, logger); err != nil {
			return fmt.Errorf("scripts (%s): %w", scriptsSource(cfg), err)
		}
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

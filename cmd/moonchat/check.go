package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/moonchat/moonchat/scripting"
)

// runCheck is "moonchat check": validate the config file and the Lua
// scripts it points at, without opening the store or listening. On
// success it says which config (a file, or the built-in defaults) and
// which scripts (a directory, or the built-in scripts) it checked, the
// shadow scripts, each lint warning of the scripts ("warning:
// FILE:LINE: ...", scripting.Lint: not a failure), then "ok"; otherwise the returned error lists every problem found (config
// errors name their key) and the process exits 1. SIGINT/SIGTERM stop it,
// also inside a script's top level that never ends.
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
	if err := ctx.Err(); err != nil {
		return interrupted(ctx)
	}
	// The keys must exist and parse: the same construction serve does.
	if _, err := newAuthenticator(&cfg.Auth, nil, nil, nil); err != nil {
		return err
	}
	// The certificate must load, match its key and be valid now, as
	// serve requires (tls.go).
	tlsLine, err := checkTLSLine(&cfg.Server)
	if err != nil {
		return err
	}
	configLine := "config: " + cfg.Source
	if cfg.Source == builtinSource && *configPath == "" {
		configLine += " (no ./" + defaultConfigFile + ")"
	}
	var scriptsLine string
	var extra []string // the shadow scripts' line, then lint warnings
	if !cfg.Scripting.Enabled {
		scriptsLine = "scripts: none, scripting is off ([scripting] enabled = false)"
	} else {
		// Scripts' own log lines (e.g. print at load time) go to stderr
		// so that stdout is only the summary.
		logger := slog.New(slog.NewTextHandler(stderr, nil))
		fsys, dir := scriptsFS(cfg, slog.New(slog.DiscardHandler))
		warnings, err := scripting.CheckScripts(ctx, fsys, logger, cfg.Scripts, cfg.Scripting.Shadow)
		if err != nil {
			if ctx.Err() != nil {
				return interrupted(ctx)
			}
			return fmt.Errorf("scripts (%s): %w", scriptsSource(cfg), err)
		}
		names := slices.DeleteFunc(scriptNames(fsys), func(n string) bool { return slices.Contains(cfg.Scripting.Shadow, n) })
		if len(cfg.Scripting.Shadow) > 0 {
			extra = append(extra, fmt.Sprintf("shadow scripts: %s (decisions logged and counted, never applied)", strings.Join(cfg.Scripting.Shadow, ", ")))
		}
		// Lint warnings are printed, not failures: a script that loads
		// runs, and a near miss may be meant (docs/lua.md, Checking scripts).
		for _, w := range warnings {
			extra = append(extra, "warning: "+w.String())
		}
		list := "no *.lua files: no scripts run"
		if len(names) > 0 {
			list = fmt.Sprintf("%d: %s", len(names), strings.Join(names, ", "))
		}
		if dir != "" {
			scriptsLine = fmt.Sprintf("scripts: directory %s (%s)", dir, list)
		} else {
			scriptsLine = fmt.Sprintf("scripts: built-in defaults, no directory %s (%s)", cfg.Scripting.Dir, list)
		}
	}
	fmt.Fprintln(stdout, escapeLine(configLine))
	fmt.Fprintln(stdout, escapeLine(scriptsLine))
	for _, l := range extra {
		fmt.Fprintln(stdout, escapeLine(l))
	}
	if tlsLine != "" {
		fmt.Fprintln(stdout, escapeLine(tlsLine))
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

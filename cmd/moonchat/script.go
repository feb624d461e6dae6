package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moonchat/moonchat/scripting"
	"github.com/moonchat/moonchat/scripting/scripttest"
	"github.com/moonchat/moonchat/store"
)

// scriptUsage is `moonchat script -h`: the verbs.
const scriptUsage = `usage: moonchat script VERB [flags] [ARGS]

  moonchat script test [-v] [-config FILE] [DIR|FILE...]
      run script tests (*_test.lua) beside the scripts: each in a fake server;
      one line per failure (FILE:LINE: TEST: MESSAGE), then "N passed, N failed";
      exit 1 on any failure. Default: the scripts directory of the config.
  moonchat script try [-config FILE] [-room R] [-since TIME] [-limit N] [-json] FILE...
      replay stored messages through today's scripts and the given ones
      (a given script replaces today's of its name); nothing is sent, stored
      or kicked: prints what would change, errors (file:line), handler time.
`

// runScript is "moonchat script VERB": the script workbench (issue 16).
func runScript(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{err: errors.New("missing verb: test or try"), usage: scriptUsage}
	}
	switch args[0] {
	case "test":
		return runScriptTest(ctx, args[1:], stdout, stderr)
	case "try":
		return runScriptTry(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		return &usageError{err: flag.ErrHelp, usage: scriptUsage}
	}
	return &usageError{err: fmt.Errorf("unknown verb %q: want test or try", args[0]), usage: scriptUsage}
}

// parseInterleaved parses flags given before, between or after the
// positional arguments ("try new.lua -room lobby"), which the flag
// package alone stops at, and returns the positional ones.
func parseInterleaved(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		out, usageFn := fset.Output(), fset.Usage
		fset.SetOutput(io.Discard)
		fset.Usage = func() {}
		err := fset.Parse(args)
		fset.SetOutput(out)
		fset.Usage = usageFn
		if err != nil {
			return nil, newUsageError(fset, err)
		}
		if fset.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fset.Arg(0))
		args = fset.Args()[1:]
	}
}

// errTestsFailed is the exit status of failed script tests: the runner
// already printed every failure.
var errTestsFailed = errors.New("script tests failed")

// runScriptTest is "moonchat script test [DIR|FILE...]".
func runScriptTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("script test", "[-v] [-config FILE] [DIR|FILE...]", stderr)
	verbose := fset.Bool("v", false, "also print a line for each test that passed")
	configPath := fset.String("config", "", "config file, for the default directory ([scripting] dir; default: ./config.toml if it exists)")
	paths, err := parseInterleaved(fset, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		cfg, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		if !scriptsDirExists(cfg) {
			return fmt.Errorf("no scripts directory %s (the built-in scripts' tests are in the source tree, defaults/scripts): give a directory or files", cfg.Scripting.Dir)
		}
		paths = []string{cfg.Scripting.Dir}
	}
	res, err := scripttest.Run(ctx, paths, scripttest.Options{Out: stdout, Verbose: *verbose})
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%w: %d of %d", errTestsFailed, res.Failed, res.Failed+res.Passed)
	}
	return nil
}

// runScriptTry is "moonchat script try FILE...": a dry run over stored
// history. The messages come from where `moonchat history` reads them —
// the store file opened read-only with the server stopped, the running
// server's HTTP API while it holds the file — through the same
// readHistory, so the same flags replay the same messages either way.
func runScriptTry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("script try", "[-config FILE] [-room R] [-since TIME] [-limit N] [-json] FILE...", stderr)
	configPath := fset.String("config", "", "config file (default: ./config.toml if it exists, else the built-in defaults)")
	room := fset.String("room", "", "replay only this room (default: every room)")
	since := fset.String("since", "", `only messages from this time on: RFC 3339, a date, or a duration ago ("2h")`)
	limit := fset.Int("limit", 1000, "replay at most this many messages (the newest ones)")
	asJSON := fset.Bool("json", false, "print the report as one JSON object")
	server := fset.String("server", "", "address (host:port) of the running server's HTTP API (default: [server] listen)")
	files, err := parseInterleaved(fset, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return newUsageError(fset, errors.New("give the script(s) to try"))
	}
	if *limit < 1 {
		return newUsageError(fset, fmt.Errorf("-limit %d: must be at least 1", *limit))
	}
	cands := map[string][]byte{}
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".lua") || scripting.IsTestScript(name) {
			return fmt.Errorf("%s: not a script (want NAME.lua)", f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		cands[name] = b
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if cfg.Store.Path == "" {
		return errors.New("[store] path is empty: this configuration keeps no history to replay")
	}
	q := store.Query{Room: *room, Limit: *limit}
	if *since != "" {
		if q.Since, err = parseSince(*since, time.Now()); err != nil {
			return err
		}
	}
	src, done, err := trySource(cfg, *server, stderr)
	if err != nil {
		return err
	}
	defer done()
	msgs, _, err := readHistory(ctx, src, q)
	if err != nil {
		return err
	}
	tc := scripttest.TryConfig{Candidates: cands, Options: cfg.Scripts, Rules: roomRules(cfg), HookTimeout: time.Duration(cfg.Scripting.HookTimeout)}
	if cfg.Scripting.Enabled {
		tc.Current, _ = scriptsFS(cfg, slog.New(slog.DiscardHandler))
	}
	rep, err := scripttest.Try(ctx, tc, msgs)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(rep)
	}
	printTry(stdout, rep)
	return nil
}

// trySource opens the history read-only: the file, or the running
// server's API when the server holds the file. done closes it.
func trySource(cfg *Config, server string, stderr io.Writer) (historySource, func(), error) {
	opts := storeOptions(cfg, nil, true)
	opts.LockTimeout = historyLockWait
	db, err := store.OpenReadOnly(cfg.Store.Path, opts)
	switch {
	case err == nil:
		return fileSource{db}, func() { db.Close() }, nil
	case errors.Is(err, store.ErrLocked):
		base, err := apiBase(cfg, server)
		if err != nil {
			return nil, nil, fmt.Errorf("%s is in use by a running server, but %w", cfg.Store.Path, err)
		}
		fmt.Fprintf(stderr, "script try: %s is in use by a running server; reading through its HTTP API at %s\n", cfg.Store.Path, base)
		return &apiClient{base: base}, func() {}, nil
	case errors.Is(err, store.ErrNotExist):
		return nil, nil, fmt.Errorf("%w (no message has been stored yet, or [store] path points elsewhere)", err)
	}
	return nil, nil, explainStoreError(err)
}

// printTry prints a dry run's report: each changed message with what
// happened to it, then a summary line.
func printTry(w io.Writer, r *scripttest.TryReport) {
	fmt.Fprintf(w, "scripts: %s (trying %s)\n", strings.Join(r.Scripts, ", "), strings.Join(r.Candidates, ", "))
	for _, c := range r.Changes {
		line := c.User + ": " + c.Text
		if c.Action {
			line = "* " + c.User + " " + c.Text
		}
		fmt.Fprintln(w, escapeLine(fmt.Sprintf("%s %s #%d %s", c.Time.UTC().Format(time.RFC3339), c.Room, c.ID, line)))
		switch c.Outcome {
		case "rewritten":
			fmt.Fprintln(w, "    rewritten → "+escapeLine(c.After))
		case "dropped":
			if c.Reason != "" {
				fmt.Fprintln(w, "    dropped: "+escapeLine(c.Reason))
			} else {
				fmt.Fprintln(w, "    dropped")
			}
		case "failed":
			fmt.Fprintln(w, "    failed: the server would refuse it ([scripting] on_failure = \"deny\")")
		}
		for _, a := range c.Answers {
			fmt.Fprintln(w, "    answered: "+escapeLine(a))
		}
		for _, e := range c.Errors {
			fmt.Fprintln(w, "    error: "+escapeLine(e))
		}
		for _, e := range c.Effects {
			fmt.Fprintln(w, "    would: "+escapeLine(e))
		}
	}
	fmt.Fprintf(w, "%d messages replayed: %d dropped, %d rewritten, %d answered, %d failed; handler time p50 %v, p99 %v\n",
		r.Messages, r.Dropped, r.Rewritten, r.Answered, r.Failed, r.P50, r.P99)
}

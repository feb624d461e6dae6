// Command moonchat is a WebSocket chat server customised with Lua.
//
// Usage:
//
//	moonchat [serve] [-config FILE]   run the chat server (the default)
//	moonchat init [-dir DIR]          write a starter config.toml and scripts/ to edit
//	moonchat check [-config FILE]     validate the config file and the Lua scripts
//	moonchat history [flags]          print or delete stored chat history
//	moonchat audit [flags]            print the moderation audit log
//	moonchat cluster status [flags]   the cluster's nodes: NATS state, stream lag, members
//	moonchat client [flags] [URL]     chat in the terminal (line mode when not a terminal)
//	moonchat console [-config FILE]   a Lua prompt inside the running server
//	moonchat script test [DIR|FILE...] run the scripts' tests (*_test.lua)
//	moonchat script try FILE...       replay stored history through scripts, acting on nothing
//	moonchat say -room R [flags] TEXT post a message through the admin API
//	moonchat echo [-listen ADDR]      run the bare WebSocket engine as an echo server
//	moonchat bench                    moved: the load generator is cmd/moonchat-bench
//	moonchat version                  print the version and build information
//	moonchat help [COMMAND]           list the commands, or a command's flags
//
// Run "moonchat COMMAND -h" for the flags of a command.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand: it parses its own flags from args and runs
// until ctx is cancelled (SIGINT/SIGTERM) or its work is done.
type command struct {
	name     string
	synopsis string // its flags, as in "moonchat NAME SYNOPSIS"
	summary  string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// ownShutdown marks commands that shut down gracefully on a signal,
	// within their own configured bound (serve: shutdown_timeout). The
	// others get signalGrace to return after a signal before main exits
	// anyway, in case they are inside a call that cannot be interrupted.
	ownShutdown bool
}

// signalGrace is how long a command without its own shutdown may take to
// return after SIGINT/SIGTERM before the process exits regardless.
const signalGrace = 3 * time.Second

func commands() []command {
	return []command{
		{"serve", "[-config FILE]", "run the chat server (the default command)", runServe, true},
		{"init", "[-dir DIR]", "write a starter config.toml and scripts/ to edit", runInit, false},
		{"check", "[-config FILE]", "validate the config file and the Lua scripts", runCheck, false},
		{"history", "[flags]", "print or delete stored chat history", runHistory, false},
		{"audit", "[flags]", "print the moderation audit log", runAudit, false},
		{"cluster", "status [flags]", "the cluster's nodes, from the running server: NATS state, stream lag, rooms and members", runCluster, false},
		{"client", "[flags] [URL]", "chat in the terminal (line mode when not on a terminal)", runClient, false},
		{"console", "[-config FILE]", "a Lua prompt inside the running server (local socket; line mode when not on a terminal)", runConsole, false},
		{"script", "test|try [ARGS]", "test scripts (*_test.lua), or try scripts on stored history without acting", runScript, false},
		{"say", "-room R [flags] TEXT", "post a message to a room through the admin API", runSay, false},
		{"echo", "[-listen ADDR]", "run the bare WebSocket engine as an echo server", runEcho, true},
		{"bench", "", "moved: go run ./cmd/moonchat-bench (the load generator)", runBench, false},
		{"version", "", "print the version and build information", runVersion, false},
		{"help", "[COMMAND]", "list the commands, or show a command's flags", nil, false},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	watched := make(chan struct{})
	c, _ := lookup(os.Args[1:])
	go func() {
		// Owned by main, which waits for it; ends when the command does.
		defer close(watched)
		afterSignal(ctx, finished, stop, !c.ownShutdown, signalGrace, os.Stderr, os.Exit)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	close(finished)
	<-watched
	stop()
	os.Exit(code)
}

// afterSignal waits until the command has finished or a signal cancelled
// ctx. After a signal it calls restore, which restores the default
// action, so that a second Ctrl-C kills a shutdown that takes too long.
// With bounded set, a command that has still not finished grace later is
// inside something that cannot be interrupted: exit(1), saying so.
func afterSignal(ctx context.Context, finished <-chan struct{}, restore func(), bounded bool, grace time.Duration, stderr io.Writer, exit func(int)) {
	select {
	case <-finished:
		return
	case <-ctx.Done():
	}
	restore()
	if !bounded {
		return
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-finished:
	case <-timer.C:
		fmt.Fprintf(stderr, "moonchat: %v, and the command did not stop within %v: exiting\n", context.Cause(ctx), grace)
		exit(1)
	}
}

// split returns the command name args select and the command's own
// arguments: no name, or flags first, means serve.
func split(args []string) (name string, rest []string) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "serve", args
}

// lookup finds the command args select.
func lookup(args []string) (command, bool) {
	name, _ := split(args)
	return find(name)
}

// find returns the command called name.
func find(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run dispatches to a subcommand and returns the process exit code: 0 on
// success, 1 when the command failed, 2 for a mistake in the command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			usage(stdout)
			return 0
		case "-version", "--version":
			args = []string{"version"}
		}
	}
	name, args := split(args)
	if name == "help" {
		if len(args) == 0 {
			usage(stdout)
			return 0
		}
		// "moonchat help history" is "moonchat history -h".
		name, args = args[0], []string{"-h"}
		if name == "help" {
			usage(stdout)
			return 0
		}
	}
	c, ok := find(name)
	if !ok || c.run == nil {
		fmt.Fprintf(stderr, "moonchat: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		if errors.As(err, &ue) {
			io.WriteString(stdout, ue.usage)
		}
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "moonchat %s: %s\n%s", name, escapeText(err.Error()), ue.usage)
		return 2
	default:
		fmt.Fprintf(stderr, "moonchat %s: %s\n", name, escapeText(err.Error()))
		return 1
	}
}

// usage lists every command with its flags.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: moonchat [COMMAND] [FLAGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-26s %s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Without a command, moonchat serves ("moonchat -config FILE" is "moonchat serve -config FILE").`)
	fmt.Fprintln(w, `Run "moonchat COMMAND -h" for the flags of a command.`)
}

// usageError is a mistake in a command line (or a request for help,
// flag.ErrHelp): run prints it followed by the command's usage and exits 2
// (0 for help, with the usage on stdout).
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// newUsageError wraps err with fset's usage text.
func newUsageError(fset *flag.FlagSet, err error) error {
	var b bytes.Buffer
	out := fset.Output()
	fset.SetOutput(&b)
	fset.Usage()
	fset.SetOutput(out)
	return &usageError{err: err, usage: b.String()}
}

// hiddenFlag prefixes the usage of flags left out of -h (test hooks).
const hiddenFlag = "\x00hidden:"

// newFlagSet makes a subcommand's flag set whose usage lists every flag
// except the hidden ones. Errors are not printed by the flag package:
// parseFlags returns them, and run prints each once, followed by the
// usage.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		w := fset.Output()
		fmt.Fprintln(w, strings.TrimSpace("usage: moonchat "+name+" "+synopsis))
		fset.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Usage, hiddenFlag) {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(w, "  -%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				// Quote only strings, as flag.PrintDefaults does:
				// (default 100), (default "lobby").
				if g, ok := f.Value.(flag.Getter); ok {
					if _, isString := g.Get().(string); isString {
						fmt.Fprintf(w, " (default %q)", f.DefValue)
					} else {
						fmt.Fprintf(w, " (default %s)", f.DefValue)
					}
				} else {
					fmt.Fprintf(w, " (default %s)", f.DefValue)
				}
			}
			fmt.Fprintln(w)
		})
	}
	return fset
}

// parseFlags parses args and refuses stray arguments. Its errors (also
// flag.ErrHelp for -h) carry the usage text, for run to print.
func parseFlags(fset *flag.FlagSet, args []string) error {
	// The flag package prints an error and calls Usage itself: silence
	// both, so that run prints the error once, then the usage.
	out, usageFn := fset.Output(), fset.Usage
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	err := fset.Parse(args)
	fset.SetOutput(out)
	fset.Usage = usageFn
	if err != nil {
		return newUsageError(fset, err)
	}
	if fset.NArg() > 0 {
		return newUsageError(fset, fmt.Errorf("unexpected argument %q", fset.Arg(0)))
	}
	return nil
}

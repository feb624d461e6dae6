// Command moonchat is a WebSocket chat server customised with Lua.
//
// Usage:
//
//	moonchat [serve] [-config FILE]   run the chat server (the default)
//	moonchat check [-config FILE]     validate config.toml and the Lua scripts
//	moonchat echo -listen ADDR        run the bare WebSocket engine as an echo server
//	moonchat history [flags]          print or edit stored chat history
//	moonchat bench [flags]            load-test a running server
//
// Run "moonchat COMMAND -h" for the flags of a command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and runs
// until ctx is cancelled or its work is done.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the chat server (default)", runServe},
		{"check", "validate config.toml and the Lua scripts", runCheck},
		{"echo", "run the bare WebSocket engine as an echo server", runEcho},
		{"history", "print or edit stored chat history", runHistory},
		{"bench", "load-test a running server", runBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default action: a second
		// Ctrl-C kills a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			fmt.Fprintf(stderr, "moonchat %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "moonchat: unknown command %q\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: moonchat [command] [flags]")
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

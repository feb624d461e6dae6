package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/moonchat/moonchat/cmd/moonchat/internal/loadgen"
)

// runBench is "moonchat bench": a load generator for a moonchat (or any
// broadcast-room WebSocket) server. Progress goes to stderr once a second;
// the result is one JSON line on stdout.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("bench", "[flags]", stderr)
	var cfg loadgen.Config
	fset.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/chat/bench", "room to load (ws://HOST:PORT/chat/ROOM)")
	fset.IntVar(&cfg.Clients, "clients", 100, "connections (room members)")
	fset.IntVar(&cfg.Senders, "senders", 10, "how many of the clients send")
	fset.Float64Var(&cfg.Rate, "rate", 0, "messages per second per sender (0 = as fast as the window allows)")
	fset.IntVar(&cfg.Window, "window", 16, "most messages in flight per sender (sent, not yet received by every member)")
	fset.IntVar(&cfg.Size, "size", 64, "message text size in bytes")
	fset.DurationVar(&cfg.Duration, "duration", loadgenDefaultDuration, "measured time (with -idle: how long the clients stay idle)")
	fset.DurationVar(&cfg.Warmup, "warmup", loadgenDefaultWarmup, "load before the measured time, not measured")
	fset.StringVar(&cfg.Format, "format", "plain", "wire format: plain or json")
	fset.IntVar(&cfg.PID, "pid", 0, "server process id: sample its CPU and memory from /proc")
	sources := fset.String("source-ips", "", "local addresses to bind clients to, e.g. 127.0.0.1-127.0.0.20 (past the ephemeral port range of one address)")
	fset.BoolVar(&cfg.Idle, "idle", false, "connect the clients, hold them idle for -duration, then time one broadcast to all")
	fset.IntVar(&cfg.JoinProbes, "join-probe", 0, "at the end, time this many joins (dial to the replayed history; moonchat servers only)")
	fset.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a non-loopback target (only servers you own)")
	fset.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 64, "dials in progress at once")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	ips, err := loadgen.ParseSourceIPs(*sources)
	if err != nil {
		return err
	}
	cfg.SourceIPs = ips
	if err := cfg.Validate(); err != nil {
		return err
	}
	sum, err := loadgen.Run(ctx, cfg, stderr)
	if sum != nil {
		line, jerr := json.Marshal(sum)
		if jerr != nil {
			return fmt.Errorf("encode summary: %w", jerr)
		}
		fmt.Fprintf(stdout, "%s\n", escapeJSON(line))
		for _, e := range sum.Errors {
			fmt.Fprintf(stderr, "bench: %s\n", escapeText(e))
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Defaults of -duration and -warmup.
const (
	loadgenDefaultDuration = 10 * time.Second
	loadgenDefaultWarmup   = 2 * time.Second
)

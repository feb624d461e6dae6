// Command moonchat-bench is a load generator for a moonchat (or any
// broadcast-room RFC 6455) server: N clients in one room, K of them
// sending, with delivery latency percentiles, loss and reordering, and the
// server's CPU and memory (-pid). It is a command of its own, not part of
// the server binary:
//
//	go run ./cmd/moonchat-bench -url ws://127.0.0.1:8080/chat/bench -clients 100 -senders 10
//
// Progress goes to stderr once a second; the result is one JSON line on
// stdout (the Summary of package internal/loadgen). Exit status: 0 on
// success, 1 when the run failed, 2 for a mistake in the command line.
// docs/performance.md says how `make bench` uses it.
//
// -url takes several room URLs separated by commas (the nodes of a
// cluster): the clients are spread over them round robin. With -worker it
// is one process of a load split over several (`make scale`, bench/scale):
// it connects its clients and then obeys commands on stdin, answering in
// JSON lines on stdout (loadgen.RunWorker), for at most -duration.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/moonchat/moonchat/cmd/moonchat-bench/internal/loadgen"
)

// Defaults of -duration and -warmup.
const (
	defaultDuration = 10 * time.Second
	defaultWarmup   = 2 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the load and returns the exit status. A signal
// (ctx) ends the run early; the summary of what was measured is still
// printed.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("moonchat-bench", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "usage: moonchat-bench [flags]")
		fset.PrintDefaults()
	}
	var cfg loadgen.Config
	urls := fset.String("url", "ws://127.0.0.1:8080/chat/bench", "room to load (ws://HOST:PORT/chat/ROOM, or wss://); several separated by commas spread the clients over them")
	tlsCA := fset.String("tls-ca", "", "with a wss:// -url: PEM file of the certificate authorities (or the self-signed certificate) to trust instead of the system's")
	fset.IntVar(&cfg.Clients, "clients", 100, "connections (room members)")
	fset.IntVar(&cfg.Senders, "senders", 10, "how many of the clients send")
	fset.Float64Var(&cfg.Rate, "rate", 0, "messages per second per sender (0 = as fast as the window allows)")
	fset.IntVar(&cfg.Window, "window", 16, "most messages in flight per sender (sent, not yet received by every member)")
	fset.IntVar(&cfg.Size, "size", 64, "message text size in bytes")
	fset.DurationVar(&cfg.Duration, "duration", defaultDuration, "measured time (with -idle: how long the clients stay idle)")
	fset.DurationVar(&cfg.Warmup, "warmup", defaultWarmup, "load before the measured time, not measured")
	fset.StringVar(&cfg.Format, "format", "plain", "wire format: plain or json")
	fset.IntVar(&cfg.PID, "pid", 0, "server process id: sample its CPU and memory from /proc")
	sources := fset.String("source-ips", "", "local addresses to bind clients to, e.g. 127.0.0.1-127.0.0.20 (past the ephemeral port range of one address)")
	fset.BoolVar(&cfg.Idle, "idle", false, "connect the clients, hold them idle for -duration, then time one broadcast to all")
	fset.IntVar(&cfg.JoinProbes, "join-probe", 0, "at the end, time this many joins (dial to the replayed history; moonchat servers only)")
	fset.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a non-loopback target (only servers you own)")
	fset.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 64, "dials in progress at once")
	fset.StringVar(&cfg.RunID, "run-id", "", "tag of this run's messages, 6-16 letters and digits (default random; the workers of one split load share one)")
	worker := fset.Bool("worker", false, "one process of a split load (bench/scale): connect, then obey send/count/arrivals/quit commands on stdin, for at most -duration")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the error and the usage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "moonchat-bench: unexpected argument %q\n", termSafe(fset.Arg(0)))
		fset.Usage()
		return 2
	}
	if *worker {
		cfg.Idle, cfg.Senders = true, 1 // as RunWorker runs it: client 0 sends the waves
	}
	for _, u := range strings.Split(*urls, ",") {
		cfg.URLs = append(cfg.URLs, strings.TrimSpace(u))
	}
	ips, err := loadgen.ParseSourceIPs(*sources)
	if err == nil && *tlsCA != "" {
		cfg.TLSRoots, err = loadCA(*tlsCA)
	}
	if err == nil {
		cfg.SourceIPs = ips
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "moonchat-bench: %s\n", termSafe(err.Error()))
		return 2
	}
	if *worker {
		if err := loadgen.RunWorker(ctx, cfg, stdin, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "moonchat-bench: worker: %s\n", termSafe(err.Error()))
			return 1
		}
		return 0
	}
	sum, err := loadgen.Run(ctx, cfg, stderr)
	if sum != nil {
		line, jerr := json.Marshal(sum)
		if jerr != nil {
			fmt.Fprintf(stderr, "moonchat-bench: encode summary: %v\n", jerr)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", asciiJSON(line))
		for _, e := range sum.Errors {
			fmt.Fprintf(stderr, "moonchat-bench: %s\n", termSafe(e))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "moonchat-bench: %s\n", termSafe(err.Error()))
		return 1
	}
	return 0
}

// loadCA reads a PEM file of certificates to trust.
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// Errors and the summary can carry text a server sent (a refusal, a close
// reason). A terminal acts on control characters (escape sequences), C1
// controls and bidi overrides instead of showing them, so what reaches
// the operator is ASCII: termSafe shows everything else as an escape.

// termSafe returns s with every byte or character outside printable ASCII
// (newlines and tabs excepted) written as \xHH or \uHHHH, and a backslash
// as \\, so that an escape in the output always stands for an escaped
// character.
func termSafe(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n' || r == '\t' || (r >= 0x20 && r < 0x7f):
			b = append(b, byte(r))
		case r < 0x80:
			b = fmt.Appendf(b, `\x%02x`, r)
		default:
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		i += size
	}
	return string(b)
}

// asciiJSON rewrites encoding/json output as ASCII: every character past
// U+007E becomes a \u escape (a surrogate pair past U+FFFF). Outside
// strings JSON holds only ASCII, and the encoder already escapes C0
// controls, so the result decodes to the same values.
func asciiJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r < 0x7f:
			out = append(out, byte(r))
		case r > 0xffff:
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}

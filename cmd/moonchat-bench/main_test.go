package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/cmd/moonchat-bench/internal/loadgen"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestRunSummary runs the command against our chat server in-process:
// exit 0, one JSON line on stdout that decodes to a Summary with every
// client connected and nothing lost (the summary `moonchat bench` printed).
func TestRunSummary(t *testing.T) {
	url := chattest.Start(t, chat.Config{
		MaxConnections: 100,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil, nil).WS + "/chat/benchcmd"
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", url, "-clients", "4", "-senders", "2",
		"-duration", "300ms", "-warmup", "0s"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout has %d lines, want one JSON line:\n%s", len(lines), stdout.String())
	}
	var sum loadgen.Summary
	if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, lines[0])
	}
	if sum.Connections != 4 || sum.Senders != 2 || sum.Lost != 0 || sum.Deliveries == 0 {
		t.Errorf("summary: connections %d, senders %d, lost %d, deliveries %d", sum.Connections, sum.Senders, sum.Lost, sum.Deliveries)
	}
}

// TestRunCommandLine checks the exit statuses of command-line mistakes
// (2, with a message naming the mistake) and of -h (0, usage listing the
// flags).
func TestRunCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "-clients"},
		{[]string{"-nosuchflag"}, 2, "nosuchflag"},
		{[]string{"stray"}, 2, `unexpected argument "stray"`},
		{[]string{"-url", "http://127.0.0.1:1/chat/x"}, 2, "want ws://"},
		{[]string{"-url", "ws://192.0.2.1/chat/x"}, 2, "-allow-remote"},
		{[]string{"-source-ips", "nonsense"}, 2, "nonsense"},
		{[]string{"-clients", "0"}, 2, "-clients"},
		{[]string{"-run-id", "a b c d e f"}, 2, "run id"},
		{[]string{"-url", "ws://127.0.0.1:1/chat/x,ws://192.0.2.1/chat/x"}, 2, "-allow-remote"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tc.args, stdout.String())
		}
	}
}

// TestTermSafe checks that what a server sent cannot reach the terminal as
// control characters, C1 or bidi controls.
func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain text: 1009 too big":    "plain text: 1009 too big",
		"line\nnext\ttab":             "line\nnext\ttab",
		"\x1b]52;c;aGk=\a":            `\x1b]52;c;aGk=\x07`,
		"del\x7f c1\u009b bidi\u202e": `del\x7f c1\u009b bidi\u202e`,
		"bad\xffutf8 back\\slash":     `bad\xffutf8 back\\slash`,
		"José":                        `Jos\u00e9`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestASCIIJSON checks that the summary line is ASCII and decodes to the
// same values, astral characters included.
func TestASCIIJSON(t *testing.T) {
	in := map[string]string{"e": "bidi\u202e del\x7f c1\u0085 ok é 😀 \x1b"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := asciiJSON(b)
	for _, c := range out {
		if c < 0x20 || c >= 0x7f {
			t.Fatalf("byte %#x in %q", c, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["e"] != in["e"] {
		t.Fatalf("decoded %q (%v), want %q", back["e"], err, in["e"])
	}
}

// TestWorkers drives two -worker runs of one room as bench/scale drives
// its worker processes: they share a run id, so a wave sent by one
// worker's client is counted and timed by both; the answers are the JSON
// lines of loadgen.WorkerLine, and quit ends both with exit 0.
func TestWorkers(t *testing.T) {
	base := chattest.Start(t, chat.Config{
		MaxConnections: 100,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil, nil).WS
	// Two "servers" of one room: the same server under two URLs is
	// enough to check that clients are spread over -url's list.
	url := base + "/chat/workers," + base + "/chat/workers"
	type worker struct {
		in   *io.PipeWriter
		out  *bufio.Scanner
		code chan int
	}
	start := func(clients string) *worker {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		w := &worker{in: inW, out: bufio.NewScanner(outR), code: make(chan int, 1)}
		go func() {
			code := run(context.Background(), []string{"-worker", "-url", url, "-clients", clients,
				"-run-id", "testrun1", "-duration", "1m"}, inR, outW, testLog{t})
			outW.Close()
			w.code <- code
		}()
		t.Cleanup(func() { inW.Close(); <-w.code })
		return w
	}
	next := func(w *worker) loadgen.WorkerLine {
		t.Helper()
		if !w.out.Scan() {
			t.Fatalf("worker output ended: %v", w.out.Err())
		}
		var l loadgen.WorkerLine
		if err := json.Unmarshal(w.out.Bytes(), &l); err != nil {
			t.Fatalf("worker line %q: %v", w.out.Text(), err)
		}
		return l
	}
	ask := func(w *worker, cmd string) loadgen.WorkerLine {
		t.Helper()
		if _, err := io.WriteString(w.in, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		return next(w)
	}
	a, b := start("5"), start("3")
	for _, w := range []*worker{a, b} {
		if l := next(w); l.Type != "connected" || l.Connections+l.ConnectErrors == 0 || l.ConnectErrors != 0 {
			t.Fatalf("first line %+v, want connected with every client", l)
		}
	}
	// The clients join some time after their handshake: send waves until
	// one reached all 8 (as the driver's barrier does).
	wave := -1
	for n := 0; n < 10 && wave < 0; n++ {
		if l := ask(a, fmt.Sprintf("send %d", n)); l.Type != "sent" || l.Wave != n || l.SentNS == 0 {
			t.Fatalf("send: %+v", l)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			ca, cb := ask(a, fmt.Sprintf("count %d", n)), ask(b, fmt.Sprintf("count %d", n))
			if ca.Type != "count" || ca.Connections != 5 || cb.Connections != 3 {
				t.Fatalf("count: %+v %+v", ca, cb)
			}
			if ca.Seen == 5 && cb.Seen == 3 {
				wave = n
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if wave < 0 {
		t.Fatal("no wave reached all 8 clients")
	}
	for _, w := range []*worker{a, b} {
		l := ask(w, fmt.Sprintf("arrivals %d", wave))
		if l.Type != "arrivals" || len(l.Micros) == 0 {
			t.Fatalf("arrivals: %+v", l)
		}
		for _, us := range l.Micros {
			if us < 0 || us > 10e6 {
				t.Errorf("latency %d µs", us)
			}
		}
	}
	if l := ask(a, "count 99"); l.Type != "error" {
		t.Errorf("count 99: %+v, want an error", l)
	}
	for _, w := range []*worker{a, b} {
		io.WriteString(w.in, "quit\n")
		if code := <-w.code; code != 0 {
			t.Errorf("worker exit %d", code)
		}
		w.code <- 0 // for the cleanup
	}
}

// testLog writes a worker's progress and errors to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

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
		"-duration", "300ms", "-warmup", "0s"}, &stdout, &stderr)
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
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
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

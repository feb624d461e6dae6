package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// startChat runs our chat server in-process without hooks or history and
// returns its ws:// base URL.
func startChat(t testing.TB) string {
	t.Helper()
	return chattest.Start(t, chat.Config{
		MaxConnections: 1000,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil, nil).WS
}

func wsURL(ts *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + path
}

// readerModes are the two receive paths: the epoll loops (Linux; elsewhere
// the same as goroutines) and a goroutine per client.
var readerModes = []struct {
	name       string
	goroutines bool
}{{"epoll", false}, {"goroutines", true}}

// TestRunAgainstChat is a short end-to-end run of the load tool against
// our chat server, in both wire formats and over both receive paths:
// nothing lost or reordered, and the summary encodes to JSON that decodes
// back with the same figures.
func TestRunAgainstChat(t *testing.T) {
	for _, mode := range readerModes {
		for _, format := range []string{"plain", "json"} {
			t.Run(mode.name+"/"+format, func(t *testing.T) { runAgainstChat(t, format, mode.goroutines) })
		}
	}
}

func runAgainstChat(t *testing.T, format string, goroutines bool) {
	ts := startChat(t)
	cfg := Config{
		URL: ts + "/chat/e2e-" + format, Clients: 20, Senders: 3, Window: 8, Size: 80,
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Format: format,
		JoinProbes: 3, GoroutineReaders: goroutines,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanRun(t, sum, 20)
	checkReaders(t, sum, goroutines)
	if sum.JoinProbe == nil || sum.JoinProbe.Failed != 0 || sum.JoinProbe.Time.N != 3 {
		t.Errorf("join probe: %+v", sum.JoinProbe)
	}
	line, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatalf("summary %s: %v", line, err)
	}
	if back.Deliveries != sum.Deliveries || back.Latency != sum.Latency || back.Format != format {
		t.Errorf("summary did not survive JSON: %s", line)
	}
	if strings.Contains(string(line), "\n") {
		t.Errorf("summary is not one line: %q", line)
	}
}

// TestRunRate checks a paced run sends about Rate messages per second per
// sender (bounded above by the schedule, which cannot run ahead).
func TestRunRate(t *testing.T) {
	ts := startChat(t)
	cfg := Config{
		URL: ts + "/chat/rate", Clients: 10, Senders: 2, Rate: 20,
		Duration: time.Second, Warmup: 0,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCleanRun(t, sum, 10)
	// 2 senders × 20/s × 1s, plus the first message of each at t=0.
	if sum.MessagesSent > 2*20+2 {
		t.Errorf("sent %d messages, the schedule allows at most 42", sum.MessagesSent)
	}
}

// TestRunIdle checks idle mode: everybody gets the one broadcast, on both
// receive paths.
func TestRunIdle(t *testing.T) {
	for _, mode := range readerModes {
		t.Run(mode.name, func(t *testing.T) { runIdle(t, mode.goroutines) })
	}
}

func runIdle(t *testing.T, goroutines bool) {
	ts := startChat(t)
	cfg := Config{URL: ts + "/chat/idle", Clients: 50, Idle: true, Duration: 200 * time.Millisecond,
		GoroutineReaders: goroutines}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Idle == nil || sum.Idle.Reached != 50 || sum.Idle.BroadcastMS <= 0 {
		t.Fatalf("idle: %+v, errors %v", sum.Idle, sum.Errors)
	}
	checkReaders(t, sum, goroutines)
	if len(sum.Errors) > 0 {
		t.Errorf("errors: %v", sum.Errors)
	}
}

// checkReaders checks that the run used the receive path asked for (the
// epoll loops exist on Linux only).
func checkReaders(t *testing.T, sum *Summary, goroutines bool) {
	t.Helper()
	want := "goroutines"
	if !goroutines && runtime.GOOS == "linux" {
		want = "epoll"
	}
	if sum.Readers != want {
		t.Errorf("receive path %q, want %q", sum.Readers, want)
	}
}

// TestRunURLs spreads the clients over several room URLs (the nodes of a
// cluster; here one server under two names of its address): client i
// goes to URLs[i%2], and the summary splits the measured deliveries per
// URL, adding up to the total.
func TestRunURLs(t *testing.T) {
	ts := startChat(t)
	other := strings.Replace(ts, "127.0.0.1", "localhost", 1)
	cfg := Config{
		URLs:    []string{ts + "/chat/urls", other + "/chat/urls"},
		Clients: 7, Senders: 2, Window: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lost != 0 || len(sum.Errors) > 0 || len(sum.PerURL) != 2 {
		t.Fatalf("lost %d, errors %v, per URL %+v", sum.Lost, sum.Errors, sum.PerURL)
	}
	a, b := sum.PerURL[0], sum.PerURL[1]
	if a.URL != cfg.URLs[0] || b.URL != cfg.URLs[1] || a.Connections != 4 || b.Connections != 3 {
		t.Errorf("per URL %+v", sum.PerURL)
	}
	if a.Deliveries == 0 || b.Deliveries == 0 || a.Deliveries+b.Deliveries != sum.Deliveries || b.Latency.N != b.Deliveries {
		t.Errorf("deliveries %d + %d, total %d; %+v", a.Deliveries, b.Deliveries, sum.Deliveries, sum.PerURL)
	}
	if sum.URL != cfg.URLs[0] {
		t.Errorf("summary URL %q", sum.URL)
	}
}

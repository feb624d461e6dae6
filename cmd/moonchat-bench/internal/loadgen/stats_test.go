package loadgen

import (
	"errors"
	"math"
	"net"
	"sync"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	// 1..1000 microseconds, recorded concurrently.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g + 1; i <= 1000; i += 4 {
				h.Record(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond},
		{0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}, {0.001, time.Microsecond},
	}
	for _, tt := range tests {
		got := h.Percentile(tt.q)
		if rel := math.Abs(float64(got-tt.want)) / float64(tt.want); rel > 0.01 {
			t.Errorf("p%v = %v, want %v ±1%%", tt.q*100, got, tt.want)
		}
	}
	if h.Count() != 1000 || h.Max() != time.Millisecond {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
	if m := h.Mean(); m < 500*time.Microsecond || m > 501*time.Microsecond {
		t.Errorf("mean %v", m)
	}
	var empty Histogram
	if empty.Percentile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram not zero")
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose middle is within 1% of it, and
	// buckets are monotonic.
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 1<<20 + 1, 987654321, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, i, prev)
		}
		prev = i
		mid := bucketMid(i)
		if v > 0 && math.Abs(float64(mid)-float64(v))/float64(v) > 0.01 {
			t.Errorf("value %d: bucket %d middle %d", v, i, mid)
		}
	}
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(-time.Second) // counts as zero
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 3*time.Millisecond || a.Percentile(0.1) != 0 {
		t.Errorf("merged: count %d max %v p10 %v", a.Count(), a.Max(), a.Percentile(0.1))
	}
}

func TestSeqState(t *testing.T) {
	s := newSeqState(2)
	var reordered int
	for _, d := range []struct {
		sender int
		seq    uint64
	}{{0, 1}, {0, 2}, {1, 1}, {0, 4}, {0, 3}, {1, 2}, {0, 5}, {1, 2}} {
		if s.observe(d.sender, d.seq) {
			reordered++
		}
	}
	// 3 after 4, and the repeated 2 of sender 1.
	if reordered != 2 {
		t.Errorf("reordered = %d, want 2", reordered)
	}
	if got := Lost(10, 3, 27); got != 3 {
		t.Errorf("Lost = %d, want 3", got)
	}
	if got := Lost(10, 3, 31); got != 0 {
		t.Errorf("Lost with duplicates = %d, want 0", got)
	}
}

func TestPayload(t *testing.T) {
	p := payload{kind: kindMessage, sender: 7, seq: 123456, sent: 1700000000123456789}
	b := appendPayload(nil, "0a1b2c3d", p, 64)
	if len(b) != 64 {
		t.Errorf("payload %d bytes, want 64: %q", len(b), b)
	}
	frames := []struct {
		frame string
		json  bool
	}{
		{"lg0a1b2c-7: " + string(b), false},
		{`{"type":"message","id":5,"room":"r","user":"u","text":"` + string(b) + `","ts":"x"}`, true},
	}
	for _, f := range frames {
		text, ok := messageText([]byte(f.frame), f.json)
		if !ok {
			t.Fatalf("messageText(%q) failed", f.frame)
		}
		got, ok := parsePayload(text, "0a1b2c3d")
		if !ok || got != p {
			t.Errorf("parsePayload = %+v %v, want %+v", got, ok, p)
		}
		if _, ok := parsePayload(text, "ffffffff"); ok {
			t.Error("payload of another run accepted")
		}
	}
	for _, bad := range []string{"* alice joined", "bob: hello", "bob: lg 0a1b2c3d m 1 2", "bob: lg 0a1b2c3d m x 2 3 "} {
		if text, ok := messageText([]byte(bad), false); ok {
			if _, ok := parsePayload(text, "0a1b2c3d"); ok {
				t.Errorf("%q parsed as a payload", bad)
			}
		}
	}
	// Too small a size still carries the whole header.
	if b := appendPayload(nil, "0a1b2c3d", p, 1); len(b) < 40 {
		t.Errorf("short payload %q", b)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "ws://127.0.0.1:8080/chat/bench", Clients: 10, Senders: 2, Duration: time.Second}
	tests := []struct {
		name   string
		change func(c *Config)
		want   error
	}{
		{"ok", func(c *Config) {}, nil},
		{"localhost", func(c *Config) { c.URL = "ws://localhost:8080/" }, nil},
		{"ipv6 loopback", func(c *Config) { c.URL = "ws://[::1]:8080/" }, nil},
		{"remote refused", func(c *Config) { c.URL = "ws://192.0.2.1:8080/" }, ErrRemoteTarget},
		{"remote allowed", func(c *Config) { c.URL = "ws://192.0.2.1:8080/"; c.AllowRemote = true }, nil},
		{"remote source refused", func(c *Config) { c.SourceIPs = []net.IP{net.ParseIP("10.0.0.1")} }, ErrRemoteTarget},
		{"wss", func(c *Config) { c.URL = "wss://127.0.0.1/" }, nil},
		{"http", func(c *Config) { c.URL = "http://127.0.0.1/" }, ErrBadConfig},
		{"no clients", func(c *Config) { c.Clients = 0 }, ErrBadConfig},
		{"too many senders", func(c *Config) { c.Senders = 11 }, ErrBadConfig},
		{"no senders", func(c *Config) { c.Senders = 0 }, ErrBadConfig},
		{"idle without senders", func(c *Config) { c.Senders = 0; c.Idle = true }, nil},
		{"negative rate", func(c *Config) { c.Rate = -1 }, ErrBadConfig},
		{"no duration", func(c *Config) { c.Duration = 0 }, ErrBadConfig},
		{"bad format", func(c *Config) { c.Format = "xml" }, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if err == nil && (c.Window != 16 || c.Size != 64 || c.Format != "plain") {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
}

func TestParseSourceIPs(t *testing.T) {
	ips, err := ParseSourceIPs("127.0.0.1-127.0.0.20")
	if err != nil || len(ips) != 20 || !ips[19].Equal(net.ParseIP("127.0.0.20")) {
		t.Fatalf("range: %v %v", ips, err)
	}
	ips, err = ParseSourceIPs("127.0.0.2, 127.0.1.254-127.0.2.1")
	if err != nil || len(ips) != 5 || !ips[2].Equal(net.ParseIP("127.0.1.255")) {
		t.Fatalf("list: %v %v", ips, err)
	}
	for _, bad := range []string{"x", "127.0.0.5-127.0.0.1", "127.0.0.1-::1"} {
		if _, err := ParseSourceIPs(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

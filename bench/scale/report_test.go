package main

import (
	"strings"
	"testing"
)

// TestPercentiles: nearest-rank percentiles of microsecond arrivals, in
// milliseconds, whatever the order they came in.
func TestPercentiles(t *testing.T) {
	us := make([]int64, 0, 200)
	for i := 200; i >= 1; i-- {
		us = append(us, int64(i)*1000) // 1 ms .. 200 ms, reversed
	}
	got := percentiles(us)
	if got != (Percentiles{N: 200, P50: 100, P99: 198, Max: 200}) {
		t.Errorf("percentiles %+v", got)
	}
	if us[0] != 200000 {
		t.Error("percentiles sorted its argument in place")
	}
	if got := percentiles([]int64{1500}); got != (Percentiles{N: 1, P50: 1.5, P99: 1.5, Max: 1.5}) {
		t.Errorf("one value: %+v", got)
	}
	if got := percentiles(nil); got != (Percentiles{}) {
		t.Errorf("none: %+v", got)
	}
}

// TestNodeConfig: a node's generated config joins the run's NATS server
// under its name, with the limits that would refuse a load from loopback
// lifted only for loopback.
func TestNodeConfig(t *testing.T) {
	c := nodeConfig("/tmp/x/node-2", "nats://127.0.0.1:4222", "node-2")
	for _, want := range []string{
		`nats_url = "nats://127.0.0.1:4222"`, `node = "node-2"`, `path = "/tmp/x/node-2/moonchat.db"`,
		`limits_exempt = ["127.0.0.0/8", "::1"]`, "flood_rate = 0", `hook_timeout = "1s"`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %s:\n%s", want, c)
		}
	}
}

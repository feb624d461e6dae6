package chat_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The tests of /metrics read every value by scraping it, as Prometheus
// does; only TestMetricsHistogramText records values through a lent
// internal (export_test.go's Probe), to check the text of known samples.

// newIdleServer is a server that is not listening: tests call its
// ServeHTTP.
func newIdleServer(t testing.TB) *chat.Server {
	t.Helper()
	srv, err := chat.New(chattest.Limits(chat.Config{Logger: chattest.TestLogger(t)}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// scrape GETs /metrics through h (a Server's ServeHTTP, Host check and
// all) and returns the body and its parsed families.
func scrape(t testing.TB, h http.Handler) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Host = "localhost"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %q\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	return rec.Body.String(), parseMetrics(t, rec.Body.String())
}

func parseMetrics(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the sample of family name whose labels are
// labels ("k", "v", ...): a counter's or gauge's value, a histogram's
// count. ok is false when there is no such sample.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// After known events, /metrics (scraped over HTTP from a running server)
// counts them: connections, rooms, messages in and out, frames, the
// batch, broadcast and delay histograms, a hook's duration; and it has the
// standard Go runtime and process collectors.
func TestMetricsAfterEvents(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, &chattest.Hooks{}, chattest.NewHistory())
	a := ts.Dial(t, "/chat/r?name=alice", "")
	a.Expect("* alice joined")
	b := ts.Dial(t, "/chat/r?name=bob", "")
	b.Expect("* bob joined")
	a.Expect("* bob joined")
	a.Send("hello")
	a.Expect("alice: hello")
	b.Expect("alice: hello")

	var fams map[string]*dto.MetricFamily
	var body string
	get := func() {
		status, text, hdr := ts.Get(t, "/metrics")
		if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("/metrics: %d %q", status, hdr.Get("Content-Type"))
		}
		body, fams = text, parseMetrics(t, text)
	}
	// The delay is observed once the broadcast has been written, which a
	// reader can see a moment before it is counted.
	chattest.Eventually(t, "message delay observed", func() bool {
		get()
		n, _ := value(fams, "moonchat_message_delay_seconds")
		return n == 1
	})
	for _, w := range []struct {
		name    string
		labels  []string
		want    float64
		atLeast bool // join notices count too
	}{
		{"moonchat_connections", nil, 2, false},
		{"moonchat_rooms", nil, 1, false},
		{"moonchat_messages_in_total", nil, 1, false},
		{"moonchat_messages_out_total", nil, 2, false}, // one message x two members
		{"moonchat_messages_dropped_total", []string{"reason", "flood"}, 0, false},
		{"moonchat_batch_messages", nil, 1, false},
		{"moonchat_frames_out_total", nil, 2, true},
		{"moonchat_broadcast_duration_seconds", nil, 1, true},
		{"moonchat_hook_duration_seconds", []string{"hook", "join"}, 2, false},
		{"moonchat_hook_duration_seconds", []string{"hook", "message"}, 1, false},
		{"moonchat_history_append_duration_seconds", nil, 1, false},
		{"moonchat_hook_failures_total", []string{"hook", "message", "reason", "timeout"}, 0, false},
	} {
		got, ok := value(fams, w.name, w.labels...)
		if !ok {
			t.Errorf("%s%v missing", w.name, w.labels)
			continue
		}
		if got != w.want && !(w.atLeast && got > w.want) {
			t.Errorf("%s%v = %v, want %v (at least: %v)", w.name, w.labels, got, w.want, w.atLeast)
		}
	}
	for name, typ := range map[string]dto.MetricType{
		"go_goroutines":              dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes":    dto.MetricType_GAUGE,
		"process_cpu_seconds_total":  dto.MetricType_COUNTER,
		"process_open_fds":           dto.MetricType_GAUGE,
		"process_start_time_seconds": dto.MetricType_GAUGE,
	} {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("standard series %s (%v) missing:\n%s", name, typ, body)
		}
	}
}

// Bucket bounds, sums and counts are written as before the move to
// client_golang: cumulative buckets with the documented bounds.
func TestMetricsHistogramText(t *testing.T) {
	srv := newIdleServer(t)
	probe := srv.Probe()
	probe.HookMessage(0.0003)
	probe.HookMessage(2)
	probe.AppendTime(0.004)
	probe.BatchSize(3)
	probe.MessagesIn(3)
	body, _ := scrape(t, srv)
	for _, want := range []string{
		"# TYPE moonchat_connections gauge\nmoonchat_connections 0\n",
		"moonchat_messages_in_total 3\n",
		"# TYPE moonchat_hook_duration_seconds histogram\n",
		`moonchat_hook_duration_seconds_bucket{hook="message",le="0.00025"} 0` + "\n",
		`moonchat_hook_duration_seconds_bucket{hook="message",le="0.0005"} 1` + "\n",
		`moonchat_hook_duration_seconds_bucket{hook="message",le="1"} 1` + "\n",
		`moonchat_hook_duration_seconds_bucket{hook="message",le="+Inf"} 2` + "\n",
		`moonchat_hook_duration_seconds_sum{hook="message"} 2.0003` + "\n",
		`moonchat_hook_duration_seconds_count{hook="message"} 2` + "\n",
		`moonchat_hook_duration_seconds_count{hook="rename"} 0` + "\n",
		`moonchat_history_append_duration_seconds_bucket{le="0.0025"} 0` + "\n",
		`moonchat_history_append_duration_seconds_bucket{le="0.005"} 1` + "\n",
		"moonchat_history_append_duration_seconds_count 1\n",
		`moonchat_batch_messages_bucket{le="2"} 0` + "\n",
		`moonchat_batch_messages_bucket{le="4"} 1` + "\n",
		`moonchat_batch_messages_bucket{le="1024"} 1` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Two servers in one process have registries of their own: what one
// counts does not show in the other's /metrics.
func TestMetricsPerServer(t *testing.T) {
	one, two := newIdleServer(t), newIdleServer(t)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Host = "evil.example"
	rec := httptest.NewRecorder()
	one.ServeHTTP(rec, req)
	if rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d", rec.Code)
	}
	_, fams := scrape(t, one)
	if v, _ := value(fams, "moonchat_host_refused_total"); v != 1 {
		t.Errorf("refusing server counts %v, want 1", v)
	}
	_, fams = scrape(t, two)
	if v, ok := value(fams, "moonchat_host_refused_total"); !ok || v != 0 {
		t.Errorf("other server counts %v (present %v), want 0", v, ok)
	}
}

// /metrics refuses methods other than GET and HEAD.
func TestMetricsMethod(t *testing.T) {
	srv := newIdleServer(t)
	req := httptest.NewRequest(http.MethodPost, "/metrics", nil)
	req.Host = "localhost"
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /metrics: %d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

// collectingHistory is a chattest.History with series of its own: it implements
// prometheus.Collector, as package store's DB does.
type collectingHistory struct {
	*chattest.History
	desc *prometheus.Desc
}

func newCollectingHistory(name string) collectingHistory {
	return collectingHistory{chattest.NewHistory(), prometheus.NewDesc(name, "A test series.", nil, nil)}
}

func (h collectingHistory) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h collectingHistory) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(h.desc, prometheus.CounterValue, 7)
}

// A History that is a prometheus.Collector has its series in /metrics
// beside the server's; a History without any adds none; one whose series
// clash with the server's is refused by New.
func TestMetricsIncludeHistorySeries(t *testing.T) {
	with := chattest.Start(t, chat.Config{}, nil, newCollectingHistory("moonchat_store_test_total"))
	_, body, _ := with.Get(t, "/metrics")
	fams := parseMetrics(t, body)
	if v, ok := value(fams, "moonchat_store_test_total"); !ok || v != 7 || fams["moonchat_store_test_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("/metrics with a collecting history:\n%s", body)
	}
	if _, ok := value(fams, "moonchat_connections"); !ok {
		t.Errorf("the server's own series are missing:\n%s", body)
	}
	without := chattest.Start(t, chat.Config{}, nil, chattest.NewHistory())
	if _, body, _ := without.Get(t, "/metrics"); strings.Contains(body, "moonchat_store_") {
		t.Errorf("/metrics without one has store series:\n%s", body)
	}
	srv, err := chat.New(chattest.Limits(chat.Config{Logger: chattest.TestLogger(t)}), nil, newCollectingHistory("moonchat_rooms"))
	if err == nil {
		_ = srv.Shutdown(context.Background())
		t.Fatal("New accepted a History whose series clash with the server's")
	}
	if !strings.Contains(err.Error(), "history's series") {
		t.Errorf("error %q does not say what clashed", err)
	}
}

// failingHistory is a History whose series cannot be collected.
type failingHistory struct {
	*chattest.History
	desc *prometheus.Desc
}

func (h failingHistory) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h failingHistory) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(h.desc, errors.New("store unreadable"))
}

// A series that cannot be collected does not hide the others: /metrics
// still answers 200 with the server's series, and counts the failure in
// promhttp_metric_handler_errors_total{cause="gathering"}.
func TestMetricsCollectFailureCounted(t *testing.T) {
	hist := failingHistory{chattest.NewHistory(), prometheus.NewDesc("moonchat_store_broken_total", "A series that fails.", nil, nil)}
	ts := chattest.Start(t, chat.Config{}, nil, hist)
	for want := 1; want <= 2; want++ {
		status, body, _ := ts.Get(t, "/metrics")
		if status != http.StatusOK {
			t.Fatalf("/metrics with a failing collector: %d\n%s", status, body)
		}
		fams := parseMetrics(t, body)
		if _, ok := value(fams, "moonchat_connections"); !ok {
			t.Errorf("the server's series are hidden by the failing one:\n%s", body)
		}
		// The scrape that fails is counted before the next one reads it.
		if v, _ := value(fams, "promhttp_metric_handler_errors_total", "cause", "gathering"); v != float64(want-1) {
			t.Errorf("scrape %d: gathering errors = %v, want %d", want, v, want-1)
		}
	}
}

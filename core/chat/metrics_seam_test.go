package chat

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// metricsHistory is a memHistory with series of its own (MetricsWriter).
type metricsHistory struct{ *memHistory }

func (metricsHistory) WriteMetrics(w io.Writer) error {
	_, err := io.WriteString(w, "# HELP moonchat_store_test_total A test series.\n# TYPE moonchat_store_test_total counter\nmoonchat_store_test_total 7\n")
	return err
}

// /metrics appends the series of a History that has any, after the chat
// server's own, and a History without any changes nothing.
func TestMetricsIncludeHistorySeries(t *testing.T) {
	get := func(hist History) string {
		ts := startServer(t, Config{}, nil, hist)
		resp, err := http.Get(ts.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
		}
		return string(body)
	}
	with := get(metricsHistory{newMemHistory()})
	if !strings.Contains(with, "\nmoonchat_store_test_total 7\n") || !strings.Contains(with, "moonchat_connections ") {
		t.Errorf("/metrics with a MetricsWriter history:\n%s", with)
	}
	if strings.Index(with, "moonchat_store_test_total") < strings.Index(with, "moonchat_connections") {
		t.Error("the history's series come before the server's")
	}
	if without := get(newMemHistory()); strings.Contains(without, "moonchat_store_") {
		t.Errorf("/metrics without one has store series:\n%s", without)
	}
}

package loadgen

import (
	"math"
	"time"
)

// Summary is the result of a run, printed as one JSON line.
type Summary struct {
	Mode          string   `json:"mode"` // "load" or "idle"
	URL           string   `json:"url"`
	Format        string   `json:"format"`
	Clients       int      `json:"clients"`
	Connections   int      `json:"connections"`
	ConnectErrors int      `json:"connect_errors"`
	Senders       int      `json:"senders"`
	Window        int      `json:"window"`
	Size          int      `json:"size"`
	Rate          float64  `json:"rate"`
	DurationSec   float64  `json:"duration_s"`
	ConnectSec    float64  `json:"connect_s"` // wall time to connect every client
	Handshake     Percents `json:"handshake_ms"`
	// Readers is the load tool's receive path: "epoll" (a few reader
	// loops) or "goroutines" (one per client).
	Readers string `json:"readers"`

	MessagesSent     uint64   `json:"messages_sent"`      // during warmup, measured time and after
	Messages         uint64   `json:"messages"`           // completed (reached every member) in the measured time
	MessagesPerSec   float64  `json:"messages_per_s"`     // Messages / duration
	Deliveries       uint64   `json:"deliveries"`         // arrivals in the measured time
	DeliveriesPerSec float64  `json:"deliveries_per_s"`   // Deliveries / duration
	Latency          Percents `json:"latency_ms"`         // per delivery, send to arrival, measured time
	MessageLatency   Percents `json:"message_latency_ms"` // send to arrival at the last member
	Lost             uint64   `json:"lost"`
	Reordered        uint64   `json:"reordered"`
	Disconnects      int      `json:"disconnects"`
	// PerURL has the measured deliveries per room URL when the clients
	// were spread over several (Config.URLs): one entry per URL, in order.
	PerURL []URLStats `json:"per_url,omitempty"`

	Server *ServerStats `json:"server,omitempty"`
	// Processes are Config.PIDs' samples over the measured time.
	Processes []ServerStats `json:"processes,omitempty"`
	Idle      *IdleStats    `json:"idle,omitempty"`
	JoinProbe *JoinStats    `json:"join_probe,omitempty"`
	Errors    []string      `json:"errors,omitempty"`
}

// Percents are latency percentiles in milliseconds.
type Percents struct {
	N    uint64  `json:"n"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// URLStats are the measured deliveries of the clients of one room URL
// (one server of several).
type URLStats struct {
	URL              string   `json:"url"`
	Connections      int      `json:"connections"`
	Deliveries       uint64   `json:"deliveries"`
	DeliveriesPerSec float64  `json:"deliveries_per_s"`
	Latency          Percents `json:"latency_ms"`
}

// ServerStats are sampled from /proc/PID while the measured time runs.
type ServerStats struct {
	PID           int     `json:"pid"`
	CPUPercent    float64 `json:"cpu_percent"` // 100 = one core busy
	RSSBytes      int64   `json:"rss_bytes"`   // at the end of the measured time
	RSSStartBytes int64   `json:"rss_start_bytes"`
	RSSPeakBytes  int64   `json:"rss_peak_bytes"` // VmHWM
}

// IdleStats is the result of idle mode.
type IdleStats struct {
	// RSS of the server before the clients connected and after they had
	// been idle for the duration; BytesPerConn is the difference divided
	// by the connections.
	RSSBeforeBytes int64   `json:"rss_before_bytes"`
	RSSAfterBytes  int64   `json:"rss_after_bytes"`
	BytesPerConn   float64 `json:"bytes_per_conn"`
	// The one timed broadcast: how many clients it reached, and when.
	Reached     int      `json:"reached"`
	BroadcastMS float64  `json:"broadcast_ms"` // arrival at the last client
	Arrival     Percents `json:"arrival_ms"`
}

// JoinStats times joins of an extra client into the loaded room: from the
// dial to the last replayed message (to the join notice when none).
type JoinStats struct {
	Probes   int      `json:"probes"`
	Failed   int      `json:"failed"`
	Replayed int      `json:"replayed"` // replayed messages seen by the last probe
	Time     Percents `json:"time_ms"`
}

func percents(h *Histogram) Percents {
	return Percents{
		N:    h.Count(),
		P50:  ms(h.Percentile(0.50)),
		P90:  ms(h.Percentile(0.90)),
		P99:  ms(h.Percentile(0.99)),
		Max:  ms(h.Max()),
		Mean: ms(h.Mean()),
	}
}

// ms converts to milliseconds rounded to microseconds.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

package chat

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// metrics are the server's counters, exposed at /metrics in the Prometheus
// text format (version 0.0.4), written by hand to avoid a dependency. All
// fields are atomics: they are bumped on hot paths by many goroutines.
type metrics struct {
	messagesIn     atomic.Uint64 // chat messages accepted from clients
	messagesOut    atomic.Uint64 // chat messages delivered (message x member)
	framesOut      atomic.Uint64 // every frame handed to the engine
	dropFlood      atomic.Uint64
	dropTooLong    atomic.Uint64
	dropBinary     atomic.Uint64
	dropHook       atomic.Uint64
	dropBadRequest atomic.Uint64
	slowConsumers  atomic.Uint64 // connections closed as slow consumers
	refused        atomic.Uint64 // connections refused (name, room, full, hook)
	hostRefused    atomic.Uint64 // HTTP requests refused for their Host (421)
	appendErrors   atomic.Uint64
	hookFailures   [numHookKinds][numHookFailReasons]atomic.Uint64
	hookJoin       histogram
	hookMessage    histogram
	hookLeave      histogram
	hookRename     histogram
	appendTime     histogram
	batchSize      histogram
	broadcastTime  histogram // one room batch written to every member
	messageDelay   histogram // a chat message's arrival to the end of its broadcast
}

// durationBuckets are upper bounds in seconds for hook and commit times:
// hooks should take microseconds, an fsync milliseconds.
var durationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// sizeBuckets are upper bounds for messages per batch.
var sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// maxBuckets is the largest bucket list above.
const maxBuckets = 12

// histogram is a fixed-bucket Prometheus histogram. counts[i] counts
// observations <= bounds[i] (non-cumulative; cumulated when written).
type histogram struct {
	counts [maxBuckets + 1]atomic.Uint64
	sum    atomic.Uint64 // float64 bits
	count  atomic.Uint64
}

func (h *histogram) observe(bounds []float64, v float64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	h.count.Add(1)
}

func (h *histogram) observeSince(start time.Time) {
	h.observe(durationBuckets, time.Since(start).Seconds())
}

// promWriter writes the exposition format.
type promWriter struct{ w *bufio.Writer }

func (p promWriter) header(name, typ, help string) {
	p.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func (p promWriter) sample(name, labels string, v float64) {
	p.w.WriteString(name)
	if labels != "" {
		p.w.WriteString("{" + labels + "}")
	}
	p.w.WriteByte(' ')
	p.w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	p.w.WriteByte('\n')
}

func (p promWriter) histogram(name, label string, bounds []float64, h *histogram) {
	var cum uint64
	sep := ""
	if label != "" {
		sep = ","
	}
	for i, b := range bounds {
		cum += h.counts[i].Load()
		p.sample(name+"_bucket", label+sep+`le="`+strconv.FormatFloat(b, 'g', -1, 64)+`"`, float64(cum))
	}
	cum += h.counts[len(bounds)].Load()
	p.sample(name+"_bucket", label+sep+`le="+Inf"`, float64(cum))
	p.sample(name+"_sum", label, math.Float64frombits(h.sum.Load()))
	p.sample(name+"_count", label, float64(h.count.Load()))
}

// writeMetrics writes every series; conns and rooms are gauges read by the
// caller.
func (m *metrics) write(w io.Writer, conns, rooms int) error {
	bw := bufio.NewWriter(w)
	p := promWriter{bw}
	p.header("moonchat_connections", "gauge", "Open WebSocket connections.")
	p.sample("moonchat_connections", "", float64(conns))
	p.header("moonchat_rooms", "gauge", "Rooms with at least one member.")
	p.sample("moonchat_rooms", "", float64(rooms))
	p.header("moonchat_messages_in_total", "counter", "Chat messages accepted from clients.")
	p.sample("moonchat_messages_in_total", "", float64(m.messagesIn.Load()))
	p.header("moonchat_messages_out_total", "counter", "Chat message deliveries (messages times receiving members).")
	p.sample("moonchat_messages_out_total", "", float64(m.messagesOut.Load()))
	p.header("moonchat_frames_out_total", "counter", "Frames handed to the WebSocket engine (messages, notices, events).")
	p.sample("moonchat_frames_out_total", "", float64(m.framesOut.Load()))
	p.header("moonchat_messages_dropped_total", "counter", "Client messages not broadcast, by reason.")
	p.sample("moonchat_messages_dropped_total", `reason="flood"`, float64(m.dropFlood.Load()))
	p.sample("moonchat_messages_dropped_total", `reason="too_long"`, float64(m.dropTooLong.Load()))
	p.sample("moonchat_messages_dropped_total", `reason="binary"`, float64(m.dropBinary.Load()))
	p.sample("moonchat_messages_dropped_total", `reason="hook"`, float64(m.dropHook.Load()))
	p.sample("moonchat_messages_dropped_total", `reason="bad_request"`, float64(m.dropBadRequest.Load()))
	p.sample("moonchat_messages_dropped_total", `reason="store_error"`, float64(m.appendErrors.Load()))
	p.header("moonchat_slow_consumers_total", "counter", "Connections closed because their write queue stayed full (their deliveries were dropped).")
	p.sample("moonchat_slow_consumers_total", "", float64(m.slowConsumers.Load()))
	p.header("moonchat_connections_refused_total", "counter", "Connections turned away after the upgrade (bad name or room, full, refused by a hook).")
	p.sample("moonchat_connections_refused_total", "", float64(m.refused.Load()))
	p.header("moonchat_host_refused_total", "counter", "HTTP requests (page, API, metrics, upgrades) refused with 421 because their Host is not a name this server answers to ([server] hosts).")
	p.sample("moonchat_host_refused_total", "", float64(m.hostRefused.Load()))
	p.header("moonchat_hook_duration_seconds", "histogram", "Time spent in script hooks.")
	p.histogram("moonchat_hook_duration_seconds", `hook="join"`, durationBuckets, &m.hookJoin)
	p.histogram("moonchat_hook_duration_seconds", `hook="message"`, durationBuckets, &m.hookMessage)
	p.histogram("moonchat_hook_duration_seconds", `hook="leave"`, durationBuckets, &m.hookLeave)
	p.histogram("moonchat_hook_duration_seconds", `hook="rename"`, durationBuckets, &m.hookRename)
	p.header("moonchat_hook_failures_total", "counter", "Hook calls that did not complete, by hook and reason (timeout, busy, error, canceled).")
	for k := range m.hookFailures {
		for r := range m.hookFailures[k] {
			p.sample("moonchat_hook_failures_total", `hook="`+hookKindNames[k]+`",reason="`+string(hookFailReasons[r])+`"`, float64(m.hookFailures[k][r].Load()))
		}
	}
	p.header("moonchat_history_append_duration_seconds", "histogram", "Time History.Append took to make a batch durable.")
	p.histogram("moonchat_history_append_duration_seconds", "", durationBuckets, &m.appendTime)
	p.header("moonchat_batch_messages", "histogram", "Chat messages per room batch (grows with load).")
	p.histogram("moonchat_batch_messages", "", sizeBuckets, &m.batchSize)
	p.header("moonchat_broadcast_duration_seconds", "histogram", "Time to write one room batch to every member of the room.")
	p.histogram("moonchat_broadcast_duration_seconds", "", durationBuckets, &m.broadcastTime)
	p.header("moonchat_message_delay_seconds", "histogram", "Server-side latency of a chat message: from its arrival to the end of its broadcast (hooks, history, fan-out and queueing behind earlier batches).")
	p.histogram("moonchat_message_delay_seconds", "", durationBuckets, &m.messageDelay)
	return bw.Flush()
}

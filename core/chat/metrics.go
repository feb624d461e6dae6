package chat

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's series, exposed at /metrics by
// github.com/prometheus/client_golang. docs/protocol.md lists them; a test
// (cmd/moonchat) scrapes a running server against that table.
//
// Invariants:
//   - Every Server has a registry of its own (no global default registry):
//     two servers in one process count apart, and a History registered as a
//     collector (seams.go) is seen only by the server it was given to.
//   - Every labelled child (a drop reason, a hook, a hook × failure reason)
//     is resolved once here, so the message path does no label lookup: a
//     counter bump is one atomic add, an observation a linear bucket search
//     and four atomic operations (BenchmarkMetricsMessagePath).
//   - Every child exists from the start, so a scrape shows each documented
//     series at 0 before it first happens.
//   - The fields are set once by newMetrics and never reassigned; the
//     values behind them are safe for concurrent use.
type metrics struct {
	reg     *prometheus.Registry
	handler http.Handler // promhttp over reg

	messagesIn      counter // chat messages accepted from clients
	messagesOut     counter // chat messages delivered (message x member)
	framesOut       counter // every frame handed to the engine
	dropFlood       counter
	dropTooLong     counter
	dropBinary      counter
	dropHook        counter
	dropBadRequest  counter
	dropNotAllowed  counter // refused by the room rules (access.go)
	appendErrors    counter // dropped with reason store_error
	dropUnavailable counter // cluster mode: refused, the node lost its cluster connection (deliver.go)
	slowConsumers   counter // connections closed as slow consumers
	refused         counter // connections refused (name, room, full, hook)
	hostRefused     counter // HTTP requests refused for their Host (421)
	historyRefused  counter // history requests refused by the room rules
	authRefused401  counter // handshakes and API requests refused by authentication with 401
	authRefused403  counter // ... with 403
	authRefused503  counter // ... with 503 (the check could not complete)
	nameOwnerErrors counter // account names that could not be recorded (NameOwners.SetNameOwner failed)
	presenceErrors  counter // cluster presence calls that failed: claims, releases, remote kicks (remote.go), direct deliveries (direct_relay.go)
	tokenRefreshed  counter // moonchat.v1 token refreshes accepted (expiry.go)
	tokenRefused    counter // ... refused
	tokenExpired    counter // connections closed with 4001 "token expired"
	hookFailures    [numHookKinds][numHookFailReasons]counter
	hookJoin        histogram
	hookMessage     histogram
	hookLeave       histogram
	hookRename      histogram
	appendTime      histogram
	batchSize       histogram
	broadcastTime   histogram // one room batch written to every member
	messageDelay    histogram // a chat message's arrival to the end of its broadcast

	// flood limits (flood.go): messages and token events refused, by
	// floodLimit; connections closed with 1008 for flooding
	floodRefused [len(floodLimitNames)]counter
	floodClosed  counter

	// admin API requests by action and result (admin.go)
	admin [numAdminActions][numAdminResults]counter

	// handshakes refused before the upgrade (addrlimits.go)
	limits limitMetrics

	// moderation refusals and failures (moderation.go)
	mod modMetrics
}

// durationBuckets are upper bounds in seconds for hook and commit times:
// hooks should take microseconds, an fsync milliseconds.
var durationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// sizeBuckets are upper bounds for messages per batch.
var sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// counter is a Prometheus counter bumped by whole numbers (the call sites
// count messages, frames and connections).
type counter struct{ c prometheus.Counter }

// Add adds n to the counter.
func (c counter) Add(n uint64) { c.c.Add(float64(n)) }

// histogram is one Prometheus histogram (or one labelled child of a
// histogram family); its buckets are fixed when the family is made.
type histogram struct{ h prometheus.Observer }

// observe records v in the buckets fixed when the family was made
// (durationBuckets or sizeBuckets, in newMetrics).
func (h histogram) observe(v float64) { h.h.Observe(v) }

// observeSince records the seconds since start.
func (h histogram) observeSince(start time.Time) { h.h.Observe(time.Since(start).Seconds()) }

// gauges are the values /metrics reads at scrape time.
type gauges struct {
	conns func() float64 // open WebSocket connections
	rooms func() float64 // rooms with at least one member
}

// newMetrics makes the server's registry and every series in it: the
// chat server's own, the gauges g reads at scrape time, the standard Go
// runtime (go_*) and process (process_*) collectors, promhttp's own error
// counter, and extra (the History's series, when it has any). It fails
// only when two collectors claim one name.
func newMetrics(g gauges, log *slog.Logger, extra ...prometheus.Collector) (metrics, error) {
	reg := prometheus.NewRegistry()
	m := metrics{reg: reg}
	newCounter := func(name, help string) counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return counter{c}
	}
	// Register cannot fail for the families below: their names are
	// distinct constants and the registry is new (MustRegister would only
	// panic on a programming error caught by every test).
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moonchat_connections", Help: "Open WebSocket connections."}, g.conns),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moonchat_rooms", Help: "Rooms with at least one member."}, g.rooms),
	)
	m.messagesIn = newCounter("moonchat_messages_in_total", "Chat messages accepted from clients.")
	m.messagesOut = newCounter("moonchat_messages_out_total", "Chat message deliveries (messages times receiving members).")
	m.framesOut = newCounter("moonchat_frames_out_total", "Frames handed to the WebSocket engine (messages, notices, events).")

	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_messages_dropped_total",
		Help: "Client messages not broadcast, by reason.",
	}, []string{"reason"})
	reg.MustRegister(dropped)
	for _, d := range []struct {
		c      *counter
		reason string
	}{
		{&m.dropFlood, "flood"}, {&m.dropTooLong, "too_long"}, {&m.dropBinary, "binary"},
		{&m.dropHook, "hook"}, {&m.dropBadRequest, "bad_request"}, {&m.appendErrors, "store_error"},
		{&m.dropNotAllowed, "not_allowed"}, {&m.dropUnavailable, "unavailable"},
	} {
		*d.c = counter{dropped.WithLabelValues(d.reason)}
	}

	m.slowConsumers = newCounter("moonchat_slow_consumers_total", "Connections closed because their write queue stayed full (their deliveries were dropped).")
	m.presenceErrors = newCounter("moonchat_presence_errors_total", "Cluster presence calls that failed: name claims (the join or rename refused), releases (retried by the cluster's roster), kicks of another node's member, and deliveries of a guest's direct message to another node of the account it was exchanged with.")
	m.refused = newCounter("moonchat_connections_refused_total", "Connections turned away after the upgrade (bad name or room, full, refused by a hook).")
	m.historyRefused = newCounter("moonchat_history_refused_total", "History requests (/api/history, WebSocket history events) refused by the room rules.")
	m.hostRefused = newCounter("moonchat_host_refused_total", "HTTP requests (page, API, metrics, upgrades) refused with 421 because their Host is not a name this server answers to ([server] hosts).")

	authRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_auth_refused_total",
		Help: "Requests refused by authentication (WebSocket handshakes before the upgrade, /api/session, /api/history, /api/rooms, /api/direct), by HTTP status (401 no or bad credentials, 403 not allowed here, 503 the check could not complete: a connect script failed).",
	}, []string{"status"})
	reg.MustRegister(authRefused)
	m.authRefused401 = counter{authRefused.WithLabelValues("401")}
	m.authRefused403 = counter{authRefused.WithLabelValues("403")}
	m.authRefused503 = counter{authRefused.WithLabelValues("503")}

	adminReqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_admin_requests_total",
		Help: "Admin API requests (and /metrics scrapes when it needs the admin token), by action and result (unauthorized: no or wrong admin token).",
	}, []string{"action", "result"})
	reg.MustRegister(adminReqs)
	for a, action := range adminActionNames {
		for r, result := range adminResultNames {
			m.admin[a][r] = counter{adminReqs.WithLabelValues(action, result)}
		}
	}

	m.nameOwnerErrors = newCounter("moonchat_name_owner_errors_total", "Joins and renames refused because the history store could not record which account owns the name.")
	m.tokenExpired = newCounter("moonchat_token_expired_total", "Connections closed with 4001 because their credentials expired.")
	tokenRefresh := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_token_refresh_total",
		Help: "moonchat.v1 token refreshes ({\"type\":\"token\"}), by result (accepted, refused).",
	}, []string{"result"})
	reg.MustRegister(tokenRefresh)
	m.tokenRefreshed = counter{tokenRefresh.WithLabelValues("accepted")}
	m.tokenRefused = counter{tokenRefresh.WithLabelValues("refused")}

	floodRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_flood_refused_total",
		Help: "Chat messages, token events and delete requests refused by a flood limit, by the limit that refused them (connection, account, address).",
	}, []string{"limit"})
	reg.MustRegister(floodRefused)
	for lim, name := range floodLimitNames {
		if name != "" {
			m.floodRefused[lim] = counter{floodRefused.WithLabelValues(name)}
		}
	}
	m.floodClosed = newCounter("moonchat_flood_closed_total", "Connections closed with 1008 for flooding ([chat] flood_strikes refusals within flood_strike_window).")

	hookTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "moonchat_hook_duration_seconds",
		Help:    "Time spent in script hooks.",
		Buckets: durationBuckets,
	}, []string{"hook"})
	hookFails := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_hook_failures_total",
		Help: "Hook calls that did not complete, by hook and reason (timeout, busy, error, canceled, memory).",
	}, []string{"hook", "reason"})
	reg.MustRegister(hookTime, hookFails)
	for k, h := range [numHookKinds]*histogram{&m.hookJoin, &m.hookMessage, &m.hookLeave, &m.hookRename} {
		*h = histogram{hookTime.WithLabelValues(hookKindNames[k])}
		for r, reason := range hookFailReasons {
			m.hookFailures[k][r] = counter{hookFails.WithLabelValues(hookKindNames[k], string(reason))}
		}
	}

	newHistogram := func(name, help string, buckets []float64) histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		reg.MustRegister(h)
		return histogram{h}
	}
	m.appendTime = newHistogram("moonchat_history_append_duration_seconds", "Time History.Append took to make a batch durable (in cluster mode: Broker.Publish, until the log acknowledged it).", durationBuckets)
	m.batchSize = newHistogram("moonchat_batch_messages", "Chat messages per room batch (grows with load).", sizeBuckets)
	m.broadcastTime = newHistogram("moonchat_broadcast_duration_seconds", "Time to write one room batch to every member of the room.", durationBuckets)
	m.messageDelay = newHistogram("moonchat_message_delay_seconds", "Server-side latency of a chat message: from its arrival to the end of its broadcast (hooks, history, fan-out and queueing behind earlier batches).", durationBuckets)

	for _, c := range extra {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("chat: /metrics: registering the history's series: %w", err)
		}
	}
	// ContinueOnError: a collector that fails (the store's, say) must not
	// hide the rest; the failure is logged and counted in
	// promhttp_metric_handler_errors_total{cause="gathering"}.
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
	return m, nil
}

// promLogger passes promhttp's errors to the server's log.
type promLogger struct{ log *slog.Logger }

// Println logs one promhttp error (its operands space-separated, as
// log.Println would).
func (l promLogger) Println(v ...any) {
	l.log.Warn("chat: /metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// initMetrics sets up s.metrics for s; New calls it once. A History that
// is also a prometheus.Collector (package store's DB is) has its series
// registered beside the server's (see History in seams.go).
func (s *Server) initMetrics() error {
	g := gauges{
		conns: func() float64 { return float64(max(s.conns.Load(), 0)) },
		rooms: func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.rooms))
		},
	}
	var extra []prometheus.Collector
	if c, ok := s.history.(prometheus.Collector); ok {
		extra = append(extra, c)
	}
	extra = append(extra, s.cfg.Collectors...)
	m, err := newMetrics(g, s.log, extra...)
	if err != nil {
		return err
	}
	s.metrics = m
	return nil
}

package scripting

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDisableAfter is Options.DisableAfter's default: a handler that
// fails or times out this many calls in a row is disabled until the next
// reload.
const DefaultDisableAfter = 20

// scriptBuckets are the upper bounds, in seconds, of the per-handler time
// histogram: from a trivial handler (tens of µs) to the default time limit
// (100ms) and past it.
var scriptBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// adminRole is the role whose connected members are told that a handler
// was disabled.
const adminRole = "admin"

// scriptMetrics are an engine's series per script and event. They outlive
// the Lua states: a reload resolves the same children again, so counters
// go on counting across reloads, and the series of handlers that no
// longer exist are deleted (forget). The engine does not register them
// anywhere: cmd/moonchat passes Engine.Collectors to the chat server's
// registry (chat.Config.Collectors), as it does with the login endpoint's
// series, so that /metrics shows them beside the server's.
type scriptMetrics struct {
	calls           *prometheus.CounterVec
	errors          *prometheus.CounterVec
	timeouts        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	disabled        *prometheus.GaugeVec
	shadowDecisions *prometheus.CounterVec
	shadowCalls     *prometheus.CounterVec
	timerSkipped    *prometheus.CounterVec
}

func newScriptMetrics() *scriptMetrics {
	lbl := []string{"script", "event"}
	return &scriptMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_calls_total",
			Help: "Calls of Lua handlers, by script and event (join, message, leave, rename, connect, login, timer, or /NAME for a command).",
		}, lbl),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_errors_total",
			Help: "Lua handler calls that failed other than by their time limit (an error, the memory limit, an unusable result), by script and event.",
		}, lbl),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_timeouts_total",
			Help: "Lua handler calls stopped by their time limit ([scripting] hook_timeout), by script and event.",
		}, lbl),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moonchat_script_duration_seconds",
			Help:    "Time of each Lua handler call, by script and event.",
			Buckets: scriptBuckets,
		}, lbl),
		disabled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moonchat_script_handlers_disabled",
			Help: "Lua handlers disabled until the next reload after [scripting] disable_after failures in a row, by script and event.",
		}, lbl),
		shadowDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_shadow_decisions_total",
			Help: "What shadow scripts ([scripting] shadow) would have decided, never applied, by script and decision (pass, rewrite, drop, error for messages; admit, rename, refuse, error for joins).",
		}, []string{"script", "decision"}),
		shadowCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_shadow_calls_total",
			Help: "chat.* calls with a side effect that shadow scripts made, recorded and not done, by script and function.",
		}, []string{"script", "call"}),
		timerSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_script_timer_skipped_total",
			Help: "chat.every ticks this node did not run because another node holds the cluster's timer lease, by script and event (timer).",
		}, lbl),
	}
}

// Collectors returns the engine's series for /metrics: per script and
// event, calls, errors, timeouts, a time histogram and the handlers
// disabled; the shadow scripts' decisions and recorded calls; the timer
// ticks skipped for Options.TimerGate. The caller
// registers them (cmd/moonchat: in the chat server's registry, through
// chat.Config.Collectors). They are the same for the engine's whole life.
func (e *Engine) Collectors() []prometheus.Collector {
	m := e.sh.metrics
	return []prometheus.Collector{m.calls, m.errors, m.timeouts, m.duration, m.disabled, m.shadowDecisions, m.shadowCalls, m.timerSkipped}
}

// handlerObs is what the engine keeps about one registered function (a
// chat.on handler, a command, a timer): its series, resolved once when
// its state is loaded so that a call costs one clock read (the call's
// start is the one its time limit reads: state.callStart) and a few
// atomic adds, and its run of failures. fails and disabled are touched
// only by whoever holds the engine's semaphore (the one caller of a Lua
// state), so they need no lock.
type handlerObs struct {
	script, event, where string
	shadow               bool // a shadow script's
	// mayDisable is false for connect and login handlers: they decide who
	// gets in, and skipping one would admit whoever it was refusing (fail
	// closed: they keep failing, and refusing, instead).
	mayDisable bool

	calls, errors, timeouts prometheus.Counter
	duration                prometheus.Observer
	disabledG               prometheus.Gauge
	skipped                 prometheus.Counter // timers only: ticks the TimerGate refused

	fails    int  // calls failed in a row
	disabled bool // until the state is replaced
}

// newObs resolves the series of one function of script for event.
func (m *scriptMetrics) newObs(script, event, where string, mayDisable, shadow bool) *handlerObs {
	return &handlerObs{
		script: script, event: event, where: where, mayDisable: mayDisable, shadow: shadow,
		calls:     m.calls.WithLabelValues(script, event),
		errors:    m.errors.WithLabelValues(script, event),
		timeouts:  m.timeouts.WithLabelValues(script, event),
		duration:  m.duration.WithLabelValues(script, event),
		disabledG: m.disabled.WithLabelValues(script, event),
	}
}

// observe gives every function of st (handlers, commands, timers) its
// series. Called once per state, before anyone calls into it. A state
// without metrics (Check's) keeps nil observers, which record nothing.
func (st *state) observe(shadow bool) {
	m := st.sh.metrics
	if m == nil {
		return
	}
	for ev := range st.handlers {
		identity := event(ev) == evConnect || event(ev) == evLogin
		for i := range st.handlers[ev] {
			h := &st.handlers[ev][i]
			h.obs = m.newObs(h.script, eventNames[ev], h.where, !identity, shadow)
		}
	}
	for _, c := range st.commands {
		c.obs = m.newObs(c.Script, "/"+c.Name, c.where, true, shadow)
	}
	for i := range st.timers {
		t := &st.timers[i]
		t.obs = m.newObs(t.script, "timer", t.where, true, shadow)
		if st.sh.timerGated {
			// Only with a gate (a cluster node): a single node never
			// skips, and shows no series that cannot move.
			t.obs.skipped = m.timerSkipped.WithLabelValues(t.script, "timer")
		}
	}
}

// labelSets lists the (script, event) pairs st has series for.
func (st *state) labelSets() [][2]string {
	var out [][2]string
	add := func(o *handlerObs) {
		if o != nil && !slices.Contains(out, [2]string{o.script, o.event}) {
			out = append(out, [2]string{o.script, o.event})
		}
	}
	for ev := range st.handlers {
		for i := range st.handlers[ev] {
			add(st.handlers[ev][i].obs)
		}
	}
	for _, c := range st.commands {
		add(c.obs)
	}
	for i := range st.timers {
		add(st.timers[i].obs)
	}
	return out
}

// disabledObs lists st's disabled functions.
func (st *state) disabledObs() []*handlerObs {
	var out []*handlerObs
	add := func(o *handlerObs) {
		if o != nil && o.disabled {
			out = append(out, o)
		}
	}
	for ev := range st.handlers {
		for i := range st.handlers[ev] {
			add(st.handlers[ev][i].obs)
		}
	}
	for _, c := range st.commands {
		add(c.obs)
	}
	for i := range st.timers {
		add(st.timers[i].obs)
	}
	return out
}

// retire is called when old is replaced by next (a reload): the handlers
// old had disabled no longer count, and the series of (script, event)
// pairs next no longer has are deleted, so that /metrics does not keep
// a removed script's handlers forever. Counters of pairs that remain go
// on. Either state may have a shadow generation.
func (m *scriptMetrics) retire(old, next *state) {
	if m == nil || old == nil {
		return
	}
	var olds, nexts [][2]string
	for _, st := range []*state{old, old.shadowState()} {
		if st == nil {
			continue
		}
		for _, o := range st.disabledObs() {
			o.disabledG.Dec()
		}
		olds = append(olds, st.labelSets()...)
	}
	if next != nil {
		nexts = append(next.labelSets(), next.shadowState().labelSetsOrNil()...)
	}
	for _, p := range olds {
		if slices.Contains(nexts, p) {
			continue
		}
		m.calls.DeleteLabelValues(p[0], p[1])
		m.errors.DeleteLabelValues(p[0], p[1])
		m.timeouts.DeleteLabelValues(p[0], p[1])
		m.duration.DeleteLabelValues(p[0], p[1])
		m.disabled.DeleteLabelValues(p[0], p[1])
		m.timerSkipped.DeleteLabelValues(p[0], p[1])
	}
}

// labelSetsOrNil is labelSets of a state that may be nil.
func (st *state) labelSetsOrNil() [][2]string {
	if st == nil {
		return nil
	}
	return st.labelSets()
}

// skip counts a timer tick Options.TimerGate refused (nil: nothing).
// Called on the timer goroutine without the engine's semaphore: the
// counter is atomic, and nothing else of o is touched.
func (o *handlerObs) skip() {
	if o != nil && o.skipped != nil {
		o.skipped.Inc()
	}
}

// off reports whether the function was disabled (nil: never).
func (o *handlerObs) off() bool { return o != nil && o.disabled }

// done records one call of o (begun at st.callStart: the call's pcall)
// that ended with err (nil: it completed and its result was usable). A
// failure extends the run of failures; the disable_after-th in a row
// disables the function until the state is replaced (st.disable). Caller
// holds the engine's semaphore.
func (st *state) done(o *handlerObs, err error) {
	if o == nil {
		return
	}
	o.duration.Observe(time.Since(st.callStart).Seconds())
	o.calls.Inc()
	if err == nil {
		o.fails = 0
		return
	}
	if isTimeout(err) {
		o.timeouts.Inc()
	} else {
		o.errors.Inc()
	}
	o.fails++
	if n := st.sh.disableAfter; n > 0 && o.fails >= n && o.mayDisable && !o.disabled {
		st.disable(o, err)
	}
}

// isTimeout reports whether a failed call was stopped by its time limit.
func isTimeout(err error) bool {
	var he *chat.HookError
	if errors.As(err, &he) {
		return he.Reason == chat.HookFailTimeout
	}
	return isTimeLimit(err.Error())
}

// disable takes o out of service until the next reload: an error log
// line, the gauge, and a notice to every connected member with the admin
// role (through the Host: chat.Host.Send, so a member in any room gets
// it). From then on the function is skipped as if it were not registered:
// a message or join handler no longer filters or refuses (which is what
// disable_after = 0 is for, when that is worse than failing), a disabled
// command answers that it is disabled, a timer no longer fires.
func (st *state) disable(o *handlerObs, err error) {
	o.disabled = true
	o.disabledG.Inc()
	kind := "handler"
	if o.shadow {
		kind = "shadow handler"
	}
	st.sh.log.Error("lua "+kind+" disabled until the next reload", "script", o.script, "event", o.event, "function", o.where, "failures_in_a_row", o.fails, "last_error", err)
	if o.shadow {
		return // nobody's chat changes: the log and the gauge say it
	}
	text := fmt.Sprintf("script %s: its %s handler (%s) failed %d times in a row and is disabled until the scripts are reloaded: %v", o.script, o.event, o.where, o.fails, err)
	notifyAdmins(st.sh.hostOf(), truncate(text, maxNoticeBytes))
}

// notifyAdmins sends text to every connected member with the admin role.
func notifyAdmins(h chat.Host, text string) {
	for _, room := range h.Rooms() {
		for _, u := range h.Users(room) {
			if slices.Contains(u.Roles, adminRole) {
				_ = h.Send(u.SessionID, text) // a member who just left: nothing to do
			}
		}
	}
}

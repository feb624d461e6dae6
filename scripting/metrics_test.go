package scripting

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather registers the engine's collectors in a fresh registry (as the
// chat server does with chat.Config.Collectors) and returns the families.
func gather(t *testing.T, e *Engine) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range e.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// sample returns the value of family name's sample with exactly the label
// values given as pairs (a histogram: its count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func wantSample(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := sample(fams, name, labels...)
	if !ok {
		t.Errorf("%s%v: no sample", name, labels)
	} else if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// Every handler, command and timer has its series per script and event,
// from the load on (zero before any call), and calls, errors, timeouts
// and time are counted per handler.
func TestPerHandlerMetrics(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: 50 * time.Millisecond, FS: scriptFS(map[string]string{
		"a.lua": `
chat.on("message", function(msg)
  if msg.text == "boom" then error("kaboom") end
  if msg.text == "spin" then while true do end end
end)
chat.on("join", function(u) end)
chat.command("hi", function(u) return "hello" end)
chat.every(3600, function() end)`,
		"b.lua": `chat.on("message", function(msg) return msg.text .. "!" end)`,
	})})
	fams := gather(t, r.e)
	for _, ev := range []string{"message", "join", "/hi", "timer"} {
		wantSample(t, fams, 0, "moonchat_script_calls_total", "script", "a.lua", "event", ev)
		wantSample(t, fams, 0, "moonchat_script_handlers_disabled", "script", "a.lua", "event", ev)
	}
	r.say(alice, "fine")
	r.say(alice, "boom")
	r.say(alice, "spin")
	r.say(alice, "/hi")
	r.e.Join(context.Background(), alice)

	fams = gather(t, r.e)
	wantSample(t, fams, 3, "moonchat_script_calls_total", "script", "a.lua", "event", "message")
	wantSample(t, fams, 1, "moonchat_script_errors_total", "script", "a.lua", "event", "message")
	wantSample(t, fams, 1, "moonchat_script_timeouts_total", "script", "a.lua", "event", "message")
	wantSample(t, fams, 3, "moonchat_script_duration_seconds", "script", "a.lua", "event", "message")
	wantSample(t, fams, 3, "moonchat_script_calls_total", "script", "b.lua", "event", "message")
	wantSample(t, fams, 0, "moonchat_script_errors_total", "script", "b.lua", "event", "message")
	wantSample(t, fams, 1, "moonchat_script_calls_total", "script", "a.lua", "event", "/hi")
	wantSample(t, fams, 1, "moonchat_script_calls_total", "script", "a.lua", "event", "join")
	wantSample(t, fams, 0, "moonchat_script_calls_total", "script", "a.lua", "event", "timer")
	// The time-limited call took at least its limit.
	for _, m := range fams["moonchat_script_duration_seconds"].GetMetric() {
		if strings.Contains(m.String(), `"a.lua"`) && strings.Contains(m.String(), `"message"`) && m.Histogram.GetSampleSum() < 0.05 {
			t.Errorf("a.lua message time sum %v s, want at least the 50ms limit", m.Histogram.GetSampleSum())
		}
	}
}

// A reload keeps counting the handlers that remain and drops the series
// of a script that is gone.
func TestMetricsAcrossReload(t *testing.T) {
	fsys := scriptFS(map[string]string{
		"a.lua": `chat.on("message", function(msg) end)`,
		"b.lua": `chat.on("message", function(msg) end)`,
	})
	r := newRigOpts(t, Options{FS: fsys})
	r.say(alice, "one")
	delete(fsys, "b.lua")
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	r.say(alice, "two")
	fams := gather(t, r.e)
	wantSample(t, fams, 2, "moonchat_script_calls_total", "script", "a.lua", "event", "message")
	if _, ok := sample(fams, "moonchat_script_calls_total", "script", "b.lua", "event", "message"); ok {
		t.Error("b.lua's series outlived the script")
	}
}

// disable_after failures in a row disable a handler until the next
// reload: logged as an error, the gauge set, every connected admin told
// (and nobody else); a success in between resets the run.
func TestDisableAfter(t *testing.T) {
	fsys := scriptFS(map[string]string{
		"f.lua": `
chat.on("message", function(msg)
  if msg.text:find("bad") then error("broken filter") end
  return false, "filtered"
end)`,
	})
	r := newRigOpts(t, Options{FS: fsys, DisableAfter: 3})
	admin := chat.User{SessionID: 7, Name: "root", Room: "dev", Roles: []string{"user", "admin"}}
	r.host.users = append(r.host.users, admin)

	for i, text := range []string{"bad", "bad", "ok", "bad", "bad"} {
		res := r.say(alice, text)
		if !res.Drop && res.Err == nil {
			t.Fatalf("message %d %q: %+v, want dropped or failed while enabled", i, text, res)
		}
	}
	if strings.Contains(r.log.String(), "disabled") {
		t.Fatalf("disabled before 3 failures in a row:\n%s", r.log)
	}
	if res := r.say(alice, "bad"); res.Err == nil {
		t.Fatalf("third failure in a row: %+v, want a failure", res)
	}
	// Disabled now: the handler no longer runs (nothing dropped, nothing failed).
	if res := r.say(alice, "bad again"); res.Drop || res.Err != nil || res.Replace {
		t.Errorf("after disabling: %+v, want the message untouched", res)
	}
	if res := r.say(alice, "hello"); res.Drop {
		t.Errorf("a disabled filter still filters: %+v", res)
	}
	log := r.log.String()
	// The line docs/lua.md (Disabled handlers) shows, for this script.
	want := `level=ERROR msg="lua handler disabled until the next reload" script=f.lua event=message function=f.lua:2 failures_in_a_row=3 last_error="hook failed (error): f.lua:3: broken filter (message hook defined at f.lua:2)"`
	if !strings.Contains(log, want) {
		t.Errorf("no line %s for the disabled handler:\n%s", want, log)
	}
	var toAdmin, toOthers int
	for _, c := range r.host.take() {
		if c.Method != "Send" {
			continue
		}
		if c.ID == admin.SessionID && strings.Contains(c.Text, "f.lua") && strings.Contains(c.Text, "disabled") {
			toAdmin++
		} else {
			toOthers++
		}
	}
	if toAdmin != 1 || toOthers != 0 {
		t.Errorf("notices: %d to the admin, %d to others; want 1 and 0", toAdmin, toOthers)
	}
	fams := gather(t, r.e)
	wantSample(t, fams, 1, "moonchat_script_handlers_disabled", "script", "f.lua", "event", "message")
	wantSample(t, fams, 5, "moonchat_script_errors_total", "script", "f.lua", "event", "message")

	// A reload brings it back.
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if res := r.say(alice, "hello"); !res.Drop {
		t.Errorf("after reload: %+v, want the filter back", res)
	}
	wantSample(t, gather(t, r.e), 0, "moonchat_script_handlers_disabled", "script", "f.lua", "event", "message")
}

// A disabled command answers that it is disabled; timeouts count as
// failures too; disable_after < 0 (the config's 0) never disables.
func TestDisableCommandAndNever(t *testing.T) {
	src := map[string]string{"c.lua": `chat.command("spin", function(u) while true do end end)`}
	r := newRigOpts(t, Options{FS: scriptFS(src), DisableAfter: 2, HookTimeout: 20 * time.Millisecond})
	r.say(alice, "/spin")
	r.say(alice, "/spin")
	res := r.say(alice, "/spin")
	if !res.Drop || res.Err != nil || !strings.Contains(res.Reason, "disabled") {
		t.Errorf("disabled command: %+v, want dropped with a reason saying it is disabled", res)
	}
	wantSample(t, gather(t, r.e), 2, "moonchat_script_timeouts_total", "script", "c.lua", "event", "/spin")

	never := newRigOpts(t, Options{FS: scriptFS(src), DisableAfter: -1, HookTimeout: 20 * time.Millisecond})
	for range 4 {
		if res := never.say(alice, "/spin"); res.Err == nil {
			t.Fatalf("never disabled: %+v, want every call to fail", res)
		}
	}
}

// Connect handlers decide who gets in: never disabled, whatever fails.
func TestConnectNeverDisabled(t *testing.T) {
	r := newRigOpts(t, Options{DisableAfter: 1, FS: scriptFS(map[string]string{
		"c.lua": `chat.on("connect", function(req) error("auth backend down") end)`,
	})})
	for range 3 {
		if got := r.e.Connect(t.Context(), ConnectRequest{Room: "lobby", Name: "eve"}); got.Err == nil {
			t.Fatalf("a failing connect handler: %+v, want a failure (refused)", got)
		}
	}
	fams := gather(t, r.e)
	wantSample(t, fams, 3, "moonchat_script_errors_total", "script", "c.lua", "event", "connect")
	wantSample(t, fams, 0, "moonchat_script_handlers_disabled", "script", "c.lua", "event", "connect")
}

// BenchmarkObserveCall is what the per-handler series add to each handler
// call: a clock read, a histogram observation and a counter.
func BenchmarkObserveCall(b *testing.B) {
	o := newScriptMetrics().newObs("a.lua", "message", "a.lua:1", true, false)
	// pcall reads the call's start for the time limit anyway.
	st := &state{sh: &shared{}, callStart: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		st.done(o, nil)
	}
}

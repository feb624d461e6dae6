package scripting

import (
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// watchCmd is the command of docs/lua.md's /metrics excerpt (Developing
// scripts, Watching scripts).
const watchCmd = "$ curl -s http://127.0.0.1:8080/metrics | grep newfilter.lua | grep -v _seconds\n"

// TestDocWatchingScripts: the Developing scripts chapter's metrics are
// the engine's. Its /metrics excerpt is what /metrics serves for the
// chapter's shadow example (newfilter.lua) after it caught one message;
// every moonchat_script_* name in the chapter (tables, PromQL) is a
// series the engine has (a histogram's with its _bucket, _sum, _count);
// and the table of Watching scripts lists every per-handler series, with
// its labels.
func TestDocWatchingScripts(t *testing.T) {
	blocks, doc := docBlocks(t)
	i, j := strings.Index(doc, "\n## Developing scripts\n"), strings.Index(doc, "\n### Checking scripts (lint)\n")
	if i < 0 || j < i {
		t.Fatal("docs/lua.md: no Developing scripts chapter")
	}
	chapter := doc[i:j]
	var src string
	for _, b := range blocks {
		if b.name == "newfilter.lua" {
			src = b.body
		}
	}
	if src == "" {
		t.Fatal("docs/lua.md: no newfilter.lua example")
	}

	// The excerpt.
	k := strings.Index(chapter, watchCmd)
	if k < 0 {
		t.Fatalf("docs/lua.md, Watching scripts: no %q", watchCmd)
	}
	want := chapter[k+len(watchCmd):]
	want = want[:strings.Index(want, "```")]
	r := newRigOpts(t, Options{Shadow: []string{"newfilter.lua"}, FS: scriptFS(map[string]string{"newfilter.lua": src})})
	if res := r.say(alice, "what the heck"); res.Drop || res.Err != nil {
		t.Fatalf("shadow: %+v", res)
	}
	reg := prometheus.NewPedanticRegistry()
	for _, c := range r.e.Collectors() {
		reg.MustRegister(c)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	var got strings.Builder
	for line := range strings.Lines(string(body)) {
		if strings.Contains(line, "newfilter.lua") && !strings.Contains(line, "_seconds") {
			got.WriteString(line)
		}
	}
	if got.String() != want {
		t.Errorf("docs/lua.md shows:\n%s\n/metrics serves:\n%s", want, got.String())
	}

	// The names, and the table's labels. The engine's families, with a
	// timer gate so that every one exists.
	g := newRigOpts(t, Options{Shadow: []string{"s.lua"}, TimerGate: func() bool { return true }, FS: scriptFS(map[string]string{
		"a.lua": `chat.on("message", function() end) chat.every(60, function() end)`,
		"s.lua": `chat.on("message", function() chat.send(1, "x") return false end)`,
	})})
	g.say(alice, "x")
	fams := gather(t, g.e)
	if len(fams) != len(g.e.Collectors()) {
		t.Fatalf("%d families for %d collectors: the test no longer sees them all", len(fams), len(g.e.Collectors()))
	}
	for _, m := range regexp.MustCompile(`moonchat_script_[a-z_]+`).FindAllString(chapter, -1) {
		name := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && fams[base] != nil && fams[base].GetType().String() == "HISTOGRAM" {
				name = base
			}
		}
		if fams[name] == nil {
			t.Errorf("docs/lua.md, Developing scripts, names %s: no such series", m)
		}
	}
	table := chapter[strings.Index(chapter, "### Watching scripts"):]
	table = table[strings.Index(table, "| series |"):]
	table = table[:strings.Index(table, "\n\n")]
	for name, f := range fams {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		if !slices.Equal(labels, []string{"event", "script"}) {
			continue // the shadow scripts' series, documented with them
		}
		if row := "| `" + name + "{script,event}` |"; !strings.Contains(table, row) {
			t.Errorf("docs/lua.md, Watching scripts: no row %s", row)
		}
	}
}

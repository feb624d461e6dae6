package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/defaults"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// docSeries is one series named in docs/protocol.md's /metrics table.
type docSeries struct {
	name   string              // a family name, or a prefix ending in "*"
	labels map[string][]string // each label and the values the doc lists
	typ    string              // "counter", "gauge", "histogram"; other text for a prefix row
	// cluster: the row says the series exists "only on [cluster mode]
	// nodes" (a single node has none; TestClusterScripts scrapes it).
	cluster bool
}

var (
	docSpan   = regexp.MustCompile("`([^`]+)`")
	docName   = regexp.MustCompile(`^([a-z_]+\*?)(?:\{(.*)\})?$`)
	docLabel  = regexp.MustCompile(`([a-z_]+)=((?:"[^"]*"\|?)+)`)
	docQuoted = regexp.MustCompile(`"([^"]*)"`)
)

// documentedSeries parses the table after "`/metrics` series" in
// docs/protocol.md: every backticked name in a row's first cell (with the
// label values it lists, `\|` separating alternatives) has the row's type.
func documentedSeries(t *testing.T) []docSeries {
	t.Helper()
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "`/metrics` is served by")
	if !ok {
		t.Fatal("docs/protocol.md: no /metrics section")
	}
	_, table, _ = strings.Cut(table, "| series | type |\n|---|---|\n")
	table, _, _ = strings.Cut(table, "\n\n")
	var out []docSeries
	for row := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(strings.ReplaceAll(strings.Trim(row, "|"), `\|`, "\x00"), "|")
		if len(cells) != 2 {
			t.Fatalf("docs/protocol.md: /metrics row %q has %d cells", row, len(cells))
		}
		typ := strings.TrimSpace(cells[1])
		cluster := strings.Contains(cells[0], "only on [cluster mode](cluster.md) nodes")
		for _, span := range docSpan.FindAllStringSubmatch(cells[0], -1) {
			m := docName.FindStringSubmatch(strings.ReplaceAll(span[1], "\x00", "|"))
			if m == nil {
				continue // not a series name (a command, say)
			}
			s := docSeries{name: m[1], typ: typ, labels: map[string][]string{}, cluster: cluster}
			for _, l := range docLabel.FindAllStringSubmatch(m[2], -1) {
				for _, v := range docQuoted.FindAllStringSubmatch(l[2], -1) {
					s.labels[l[1]] = append(s.labels[l[1]], v[1])
				}
			}
			out = append(out, s)
		}
	}
	if len(out) < 20 {
		t.Fatalf("docs/protocol.md: only %d series parsed from the /metrics table: %+v", len(out), out)
	}
	return out
}

// labelSets returns every combination of the listed label values.
func labelSets(labels map[string][]string) []map[string]string {
	sets := []map[string]string{{}}
	for k, vs := range labels {
		var next []map[string]string
		for _, set := range sets {
			for _, v := range vs {
				n := map[string]string{k: v}
				for kk, vv := range set {
					n[kk] = vv
				}
				next = append(next, n)
			}
		}
		sets = next
	}
	return sets
}

// hasSample reports whether f has a sample with at least the labels of set.
func hasSample(f *dto.MetricFamily, set map[string]string) bool {
	for _, m := range f.GetMetric() {
		n := 0
		for _, l := range m.GetLabel() {
			if v, ok := set[l.GetName()]; ok && v == l.GetValue() {
				n++
			}
		}
		if n == len(set) {
			return true
		}
	}
	return false
}

// The /metrics of a running moonchat (store, default scripts, a message
// exchanged) has every series docs/protocol.md lists, with its type and
// each listed label value, and no moonchat_* family the doc does not list:
// doc and code cannot drift apart. A series the doc says exists only on
// cluster nodes is not there (TestClusterScripts scrapes one).
func TestMetricsMatchProtocolDoc(t *testing.T) {
	// The default scripts, and a shadow script that decides and calls
	// chat.send, so that the shadow series (which exist only with shadow
	// scripts) are there too.
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	if err := os.CopyFS(scripts, defaults.Scripts()); err != nil {
		t.Fatal(err)
	}
	probe := `chat.on("message", function(msg) chat.send(msg.user, "seen") end)`
	if err := os.WriteFile(filepath.Join(scripts, "probe.lua"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startInProcess(t, testConfig(t, dir, map[string]string{"scripting": fmt.Sprintf("dir = %q\nshadow = [\"probe.lua\"]\n", scripts)}))
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	alice.send("hello")
	alice.waitFor("her message", func(e event) bool { return e.Type == "message" })

	code, body := httpGet(t, "http://"+srv.addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	var documented []string
	for _, s := range documentedSeries(t) {
		if prefix, ok := strings.CutSuffix(s.name, "*"); ok {
			found := false
			for name := range fams {
				found = found || strings.HasPrefix(name, prefix)
			}
			if !found {
				t.Errorf("no %s series in /metrics", s.name)
			}
			continue
		}
		documented = append(documented, s.name)
		f := fams[s.name]
		if s.cluster {
			if f != nil {
				t.Errorf("%s is documented as a cluster node's only, but a single node has it", s.name)
			}
			continue
		}
		if f == nil {
			t.Errorf("%s (documented) is not in /metrics", s.name)
			continue
		}
		want, ok := types[s.typ]
		if !ok {
			t.Errorf("docs/protocol.md gives %s the type %q", s.name, s.typ)
		} else if f.GetType() != want {
			t.Errorf("%s is a %v, documented as %s", s.name, f.GetType(), s.typ)
		}
		for _, set := range labelSets(s.labels) {
			if !hasSample(f, set) {
				t.Errorf("%s%v (documented) has no sample", s.name, set)
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "moonchat_") && !slices.Contains(documented, name) {
			t.Errorf("%s is in /metrics but not in docs/protocol.md", name)
		}
	}
	// The exchange above was counted.
	if v := fams["moonchat_messages_in_total"].GetMetric()[0].GetCounter().GetValue(); v != 1 {
		t.Errorf("moonchat_messages_in_total = %v, want 1", v)
	}
	if v := fams["moonchat_store_commits_total"].GetMetric()[0].GetCounter().GetValue(); v < 1 {
		t.Errorf("moonchat_store_commits_total = %v, want >= 1", v)
	}
}

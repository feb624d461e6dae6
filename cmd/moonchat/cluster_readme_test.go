package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestReadmeClusterConfigs (issue 15): the README's "Running a cluster"
// samples work as the text says — nats-server's own parser reads a
// JetStream server with sync_interval always in a cluster of three
// routes, moonchat loads the [store] and [cluster] sample (three URLs,
// replicas 3), and the nats-server.conf is docs/cluster.md's (which
// TestClusterDocConfigs checks), so that the two cannot drift apart.
func TestReadmeClusterConfigs(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## Running a cluster\n")
	if !ok {
		t.Fatal("README.md: no section Running a cluster")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	if !strings.Contains(sec, "go install github.com/nats-io/nats-server/v2@v2.15.2") || !strings.Contains(sec, "No sticky sessions are needed") {
		t.Error("README.md, Running a cluster: no install command or no word on sticky sessions")
	}
	// The samples are indented under list items: unindent them.
	block := func(s, fence string) (string, string) {
		_, rest, ok := strings.Cut(s, fence+"\n")
		if !ok {
			t.Fatalf("README.md, Running a cluster: no %q block", fence)
		}
		body, rest, _ := strings.Cut(rest, "   ```\n")
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			lines = append(lines, strings.TrimPrefix(l, "   "))
		}
		return strings.TrimRight(strings.Join(lines, "\n"), "\n"), rest
	}
	natsConf, rest := block(sec, "   ```")
	moonConf, _ := block(rest, "   ```toml")

	p := filepath.Join(t.TempDir(), "nats-server.conf")
	if err := os.WriteFile(p, []byte(natsConf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := natsserver.ProcessConfigFile(p)
	if err != nil {
		t.Fatalf("README's nats-server.conf: %v\n%s", err, natsConf)
	}
	if !o.JetStream || !o.SyncAlways || o.StoreDir == "" || o.Port != 4222 || o.Cluster.Name != "moonchat" || o.Cluster.Port != 6222 || len(o.Routes) != 3 {
		t.Errorf("README's nats-server.conf: jetstream %v sync always %v store %q port %d cluster %q:%d routes %v",
			o.JetStream, o.SyncAlways, o.StoreDir, o.Port, o.Cluster.Name, o.Cluster.Port, o.Routes)
	}
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "\n```\n"+natsConf+"\n```\n") {
		t.Errorf("README's nats-server.conf is not the one of docs/cluster.md:\n%s", natsConf)
	}

	cfg, err := loadConfig(writeConfig(t, moonConf+"\n"))
	if err != nil {
		t.Fatalf("README's [cluster] sample: %v\n%s", err, moonConf)
	}
	if lc := clusterLogConfig(cfg, nil); strings.Count(lc.URL, "nats://") != 3 || lc.Replicas != 3 || cfg.Store.Path == "" {
		t.Errorf("README's [cluster] sample: %+v, store %q", lc, cfg.Store.Path)
	}
}

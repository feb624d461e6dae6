package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The cluster scenario of `make bench` (issue 15): the 1000-member room of
// fixed1000, measured three ways in alternating runs — one moonchat node
// as in the other scenarios ("moonchat"), one node in cluster mode on a
// NATS server ("cluster1": the same room, every message through the
// stream), and three nodes on that NATS server with the clients spread
// over them round robin ("cluster3"). One nats-server (built from the
// nats-server module in go.mod, a child process like the nodes) with
// JetStream's file store in a temp dir, default sync, and the stream with
// replicas 1. Everything runs on the same machine as the load generator.

// clusterNodes tells a cluster server name ("cluster3") and its nodes.
func clusterNodes(server string) (int, bool) {
	rest, ok := strings.CutPrefix(server, "cluster")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// runCluster starts a NATS server and n nodes and runs sc with the
// clients spread over the nodes; the summary's Server is node 1 and its
// Processes are every node, then the NATS server.
func runCluster(t testing.TB, bins benchBinaries, n int, sc scenario) result {
	res := result{Server: fmt.Sprintf("cluster%d", n), Scenario: sc.key}
	nats, natsURL := startNATS(t, bins.nats)
	defer nats.stop()
	cfg := sc.cfg
	var addrs []string
	for i := range n {
		// One after another: the first creates the stream.
		srv := startMoonchat(t, bins.moonchat, fmt.Sprintf("[cluster]\nnats_url = %q\nnode = \"node-%d\"\npublish_timeout = \"10s\"\n", natsURL, i+1))
		defer srv.stop()
		cfg.URLs = append(cfg.URLs, "ws://"+srv.addr+"/chat/bench")
		addrs = append(addrs, srv.addr)
		cfg.PIDs = append(cfg.PIDs, srv.cmd.Process.Pid)
	}
	cfg.PID = cfg.PIDs[0]
	cfg.PIDs = append(cfg.PIDs, nats.cmd.Process.Pid)
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := Run(ctx, cfg, os.Stderr)
	res.Summary = sum
	if err != nil {
		res.Err = err.Error()
	} else if len(sum.Errors) > 0 {
		res.Err = strings.Join(sum.Errors, "; ")
	}
	res.Counters = map[string]float64{}
	for _, addr := range addrs {
		if err := scrapeCounters(addr, res.Counters); err != nil {
			t.Logf("metrics of %s: %v", addr, err)
		}
	}
	return res
}

// Counters read from each node's /metrics after a cluster run.
const (
	recordsSeries      = "moonchat_cluster_records_published_total"
	conflictsSeries    = "moonchat_cluster_publish_conflicts_total"
	publishSumSeries   = "moonchat_history_append_duration_seconds_sum" // in cluster mode: Broker.Publish
	publishCountSeries = "moonchat_history_append_duration_seconds_count"
)

// scraped are the series scrapeCounters sums.
var scraped = []string{recordsSeries, conflictsSeries, publishSumSeries, publishCountSeries}

// scrapeCounters adds the node's scraped series into into.
func scrapeCounters(addr string, into map[string]float64) error {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	found := 0
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(scraped, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		into[name] += v
		found++
	}
	if found != len(scraped) {
		return fmt.Errorf("%d of the %d series %v", found, len(scraped), scraped)
	}
	return nil
}

// startNATS runs nats-server with JetStream on a free loopback port, its
// store in a temp dir, and returns it with its client URL.
func startNATS(t testing.TB, bin string) (*childServer, string) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: %s\njetstream {\n  store_dir: %q\n}\n", addr, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "nats-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	c := &childServer{cmd: cmd, stdin: stdin, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return c, "nats://" + addr
		}
		select {
		case <-c.done:
			t.Fatalf("nats-server exited before listening (log in %s)", dir)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening on %s after 30s", addr)
		}
	}
}

// clusterServers are the cluster scenario's columns.
var clusterServers = []struct{ key, title string }{
	{"moonchat", "one node"},
	{"cluster1", "1 node + NATS"},
	{"cluster3", "3 nodes + NATS"},
}

// nodesCPU is the CPU of a cluster run's nodes together (all but the last
// process, the NATS server), or the single server's.
func nodesCPU(s *Summary) float64 {
	if len(s.Processes) < 2 {
		return cpu(s)
	}
	var c float64
	for _, p := range s.Processes[:len(s.Processes)-1] {
		c += p.CPUPercent
	}
	return c
}

// natsStats is the NATS server's sample of a cluster run (nil otherwise).
func natsStats(s *Summary) *ServerStats {
	if len(s.Processes) < 2 {
		return nil
	}
	return &s.Processes[len(s.Processes)-1]
}

// renderCluster writes the cluster scenario's tables: the median run of
// each way, the added latency of three nodes against one node, and the
// three-node run per node.
func renderCluster(b *strings.Builder, results []result, sc scenario) {
	sums := make([]*Summary, len(clusterServers))
	b.WriteString("| |")
	for i, cs := range clusterServers {
		sums[i] = find(results, cs.key, sc.key)
		b.WriteString(" " + cs.title + " |")
	}
	b.WriteString(" added by 3 nodes + NATS |\n|---|---:|---:|---:|---:|\n")
	rows := []struct {
		name   string
		get    func(*Summary) (float64, bool)
		format string
		added  bool
	}{
		{"deliveries/s (all nodes)", func(s *Summary) (float64, bool) { return s.DeliveriesPerSec, true }, "%.0f", false},
		{"latency p50 ms", func(s *Summary) (float64, bool) { return s.Latency.P50, true }, "%.2f", true},
		{"latency p90 ms", func(s *Summary) (float64, bool) { return s.Latency.P90, true }, "%.2f", true},
		{"latency p99 ms", func(s *Summary) (float64, bool) { return s.Latency.P99, true }, "%.2f", true},
		{"latency max ms", func(s *Summary) (float64, bool) { return s.Latency.Max, true }, "%.2f", false},
		{"lost / reordered", func(s *Summary) (float64, bool) { return float64(s.Lost + s.Reordered), true }, "%.0f", false},
		{"moonchat CPU %, all nodes (100 = one core)", func(s *Summary) (float64, bool) { return nodesCPU(s), true }, "%.0f", false},
		{"nats-server CPU %", func(s *Summary) (float64, bool) {
			if n := natsStats(s); n != nil {
				return n.CPUPercent, true
			}
			return 0, false
		}, "%.0f", false},
		{"nats-server RSS MB", func(s *Summary) (float64, bool) {
			if n := natsStats(s); n != nil {
				return float64(n.RSSBytes) / 1e6, true
			}
			return 0, false
		}, "%.1f", false},
		{"handshake p99 ms", func(s *Summary) (float64, bool) { return s.Handshake.P99, true }, "%.2f", false},
	}
	for _, row := range rows {
		fmt.Fprintf(b, "| %s |", row.name)
		var vals [3]float64
		var have [3]bool
		for i, s := range sums {
			if s == nil {
				b.WriteString(" — |")
				continue
			}
			vals[i], have[i] = row.get(s)
			if !have[i] {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(b, " "+row.format+" |", vals[i])
		}
		if row.added && have[0] && have[2] {
			fmt.Fprintf(b, " %+.2f |\n", vals[2]-vals[0])
		} else {
			b.WriteString(" |\n")
		}
	}
	b.WriteString("| records published (stream messages) / publish conflicts per record |")
	for i := range clusterServers {
		r := resultOf(results, sums[i])
		if i == 0 || r == nil || r.Counters[recordsSeries] == 0 {
			b.WriteString(" — |")
			continue
		}
		fmt.Fprintf(b, " %.0f / %.2f |", r.Counters[recordsSeries], r.Counters[conflictsSeries]/r.Counters[recordsSeries])
	}
	b.WriteString(" |\n| publish time per batch (room goroutine waits), mean ms |")
	for i := range clusterServers {
		r := resultOf(results, sums[i])
		if i == 0 || r == nil || r.Counters[publishCountSeries] == 0 {
			b.WriteString(" — |")
			continue
		}
		fmt.Fprintf(b, " %.2f |", 1e3*r.Counters[publishSumSeries]/r.Counters[publishCountSeries])
	}
	b.WriteString(" |\n")
	for _, r := range results {
		if r.Scenario == sc.key && r.Err != "" {
			fmt.Fprintf(b, "\n**%s run %d reported problems:** %s\n", r.Server, r.Run, r.Err)
		}
	}
	b.WriteString(runsLine(results, sc, "p99 latency (ms)"))
	s3 := sums[2]
	if s3 == nil || len(s3.PerURL) == 0 {
		return
	}
	b.WriteString("\nPer node, 3 nodes + NATS (its median run; a node's deliveries are those to its own clients):\n\n")
	b.WriteString("| node | clients | deliveries/s | latency p50 ms | latency p99 ms | CPU % | RSS MB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for i, u := range s3.PerURL {
		cpuText, rss := "—", "—"
		if i < len(s3.Processes)-1 {
			p := s3.Processes[i]
			cpuText, rss = fmt.Sprintf("%.0f", p.CPUPercent), fmt.Sprintf("%.1f", float64(p.RSSBytes)/1e6)
		}
		fmt.Fprintf(b, "| node-%d | %d | %.0f | %.2f | %.2f | %s | %s |\n", i+1, u.Connections, u.DeliveriesPerSec, u.Latency.P50, u.Latency.P99, cpuText, rss)
	}
}

// resultOf returns the result holding s (nil for none).
func resultOf(results []result, s *Summary) *result {
	for i := range results {
		if s != nil && results[i].Summary == s {
			return &results[i]
		}
	}
	return nil
}

// clusterText is the cluster scenario's line at the end of `make bench`.
func clusterText(rs []result) string {
	one, three := find(rs, "moonchat", "cluster1000"), find(rs, "cluster3", "cluster1000")
	if one == nil || three == nil {
		return ""
	}
	return fmt.Sprintf("  cluster, 1000 members over 3 nodes vs one node: latency p50 %+.2f ms, p99 %+.2f ms (%.2f / %.2f ms vs %.2f / %.2f ms)\n",
		three.Latency.P50-one.Latency.P50, three.Latency.P99-one.Latency.P99,
		three.Latency.P50, three.Latency.P99, one.Latency.P50, one.Latency.P99)
}

// clusterMethod says how the cluster scenario is run (before its tables).
const clusterMethod = `The load of the 1000-client scenario above (10 senders at 10 msg/s each,
64-byte messages, 100k deliveries/s offered) against moonchat three ways,
in rotating order, each run on fresh processes and stores, measuring half
the time of the scenarios above after the same warmup:

- **one node**: ` + "`moonchat serve`" + ` as in the other scenarios (no ` + "`[cluster]`" + `).
- **1 node + NATS**: the same node with ` + "`[cluster] nats_url`" + ` set: every message
  goes through the JetStream stream and is delivered when the node reads
  it back.
- **3 nodes + NATS**: three such nodes on the same NATS server, the clients
  spread over them round robin (client i on node i mod 3: 334, 333 and 333
  members, the senders spread too), so that most deliveries of a message
  happen on nodes other than its sender's.

One ` + "`nats-server`" + ` (v2.15.2, built from the module in go.mod, a child process
like the nodes), JetStream's file store in a temp dir with the default
sync (fsync every 2 minutes), and the stream with **replicas 1**: this
measures what the stream hop and the spreading cost, not replication
(docs/cluster.md, "What acknowledged survives", has the publish cost of
replicas 3 and of ` + "`sync_interval: always`" + `). All the processes share the
machine's two cores with the load generator, so the added latency includes
the extra processes' competition for CPU. Latency is per delivery, from the
send to the arrival, as above; a node's deliveries/s are those to its own
clients. By hand, with three nodes listening on A, B and C:

` + "```" + `
go run ./cmd/moonchat-bench -url ws://A/chat/bench,ws://B/chat/bench,ws://C/chat/bench \
    -clients 1000 -senders 10 -rate 10 -duration 10s
` + "```" + `

`

// TestRenderCluster: the cluster tables show each way's median run, the
// latency three nodes add to one node, the NATS server's figures, the
// conflicts per record and the three-node run per node.
func TestRenderCluster(t *testing.T) {
	var sc scenario
	for _, s := range scenarios(time.Second) {
		if s.key == "cluster1000" {
			sc = s
		}
	}
	if sc.key == "" {
		t.Fatal("no cluster1000 scenario")
	}
	one := &Summary{DeliveriesPerSec: 100000, Latency: Percents{P50: 6, P99: 18}, Server: &ServerStats{CPUPercent: 80}}
	three := &Summary{DeliveriesPerSec: 99000, Latency: Percents{P50: 10.5, P99: 30.25},
		Processes: []ServerStats{{CPUPercent: 30}, {CPUPercent: 31}, {CPUPercent: 32}, {CPUPercent: 9, RSSBytes: 22e6}},
		PerURL: []URLStats{
			{Connections: 334, DeliveriesPerSec: 33000, Latency: Percents{P50: 10, P99: 29}},
			{Connections: 333, DeliveriesPerSec: 33000, Latency: Percents{P50: 11, P99: 31}},
			{Connections: 333, DeliveriesPerSec: 33000, Latency: Percents{P50: 10.5, P99: 30}},
		}}
	rs := []result{
		{Server: "moonchat", Scenario: sc.key, Run: 1, Summary: one},
		{Server: "cluster3", Scenario: sc.key, Run: 1, Summary: three, Counters: map[string]float64{recordsSeries: 400, conflictsSeries: 100, publishSumSeries: 2, publishCountSeries: 400}},
	}
	var b strings.Builder
	renderCluster(&b, rs, sc)
	out := b.String()
	for _, want := range []string{
		"| latency p50 ms | 6.00 | — | 10.50 | +4.50 |",
		"| latency p99 ms | 18.00 | — | 30.25 | +12.25 |",
		"| moonchat CPU %, all nodes (100 = one core) | 80 | — | 93 | |",
		"| nats-server RSS MB | — | — | 22.0 | |",
		"| records published (stream messages) / publish conflicts per record | — | — | 400 / 0.25 | |",
		"| node-2 | 333 | 33000 | 11.00 | 31.00 | 31 | 0.0 |",
		"| publish time per batch (room goroutine waits), mean ms | — | — | 5.00 | |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	if got := clusterText(rs); !strings.Contains(got, "p50 +4.50 ms, p99 +12.25 ms") {
		t.Errorf("clusterText %q", got)
	}
}

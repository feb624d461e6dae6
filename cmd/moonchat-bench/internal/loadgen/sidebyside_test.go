package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The side-by-side benchmark behind `make bench`: moonchat (history and
// the default Lua scripts on, flood control off) and the gws baseline, each
// in its own fresh child process, driven by this package's load generator
// in the test process, in three scenarios; then moonchat against itself
// in cluster mode (cluster_bench_test.go: one node, one node and three
// nodes on a NATS server). It regenerates
// docs/performance.md from the figures. It is a benchmark, not a test
// (`go test` never runs it, so CI neither runs nor skips it); it takes a
// few minutes and rewrites a document, so it runs only with
// MOONCHAT_BENCH=1, once per invocation:
//
//	MOONCHAT_BENCH=1 go test -run '^$' -bench '^BenchmarkSideBySide$' -benchtime=1x ./cmd/moonchat-bench/internal/loadgen

// Environment of the side-by-side benchmark.
const (
	benchEnv         = "MOONCHAT_BENCH"          // "1" runs it
	benchOutEnv      = "MOONCHAT_BENCH_OUT"      // the document to write (default docs/performance.md)
	benchMicroEnv    = "MOONCHAT_BENCH_MICRO"    // file with `go test -bench` output to include
	benchDurationEnv = "MOONCHAT_BENCH_DURATION" // measured time per run (default 10s)
	benchPprofEnv    = "MOONCHAT_BENCH_PPROF"    // pprof listen address for the moonchat child
	benchOnlyEnv     = "MOONCHAT_BENCH_ONLY"     // comma-separated scenario keys to run; the document is then not rewritten
	benchBinEnv      = "MOONCHAT_BENCH_BIN"      // a moonchat binary to measure instead of building cmd/moonchat
	benchCommitEnv   = "MOONCHAT_BENCH_COMMIT"   // what is measured, for the document (default: git's HEAD, marked when the tree has changes)
)

// scenario is one comparison.
type scenario struct {
	key, title string
	cfg        Config
	probes     int // join probes, moonchat only (gws has no replay)
	// runs is how many times each server runs it, alternating which goes
	// first; the report shows each server's median run by rank (see
	// pick). Tail latency on a shared 2-core box varies by tens of
	// percent from run to run, more than the difference it is to judge.
	runs int
	// rank orders a scenario's runs for the median.
	rank func(*Summary) float64
	// servers are the servers compared, in the first run's order (the
	// next runs rotate it); nil = moonchat and gws.
	servers []string
}

// serverList is sc's servers.
func (sc scenario) serverList() []string {
	if sc.servers == nil {
		return []string{"moonchat", "gws"}
	}
	return sc.servers
}

func scenarios(d time.Duration) []scenario {
	return []scenario{
		{
			key:   "broadcast100",
			title: "100 clients, 10 senders as fast as allowed (window 16), 64-byte messages",
			cfg:   Config{Clients: 100, Senders: 10, Window: 16, Size: 64, Duration: d, Warmup: 2 * time.Second},
			runs:  1,
			rank:  func(s *Summary) float64 { return s.DeliveriesPerSec },
		},
		{
			key:    "fixed1000",
			title:  "1000 clients, 10 senders at 10 msg/s each = 100k deliveries/s offered",
			cfg:    Config{Clients: 1000, Senders: 10, Rate: 10, Window: 16, Size: 64, Duration: d, Warmup: 2 * time.Second},
			probes: 50,
			runs:   5,
			rank:   func(s *Summary) float64 { return s.Latency.P99 },
		},
		{
			key:   "idle10k",
			title: "10,000 idle connections, then one broadcast to all",
			cfg:   Config{Clients: 10000, Idle: true, Size: 64, Duration: 3 * time.Second},
			runs:  1,
			rank:  func(s *Summary) float64 { return s.Idle.BytesPerConn },
		},
		{
			key:   "cluster1000",
			title: "1000 clients spread over 3 cluster nodes, 10 senders at 10 msg/s each",
			// Half the measured time of fixed1000: 3 ways × 3 runs
			// keep `make bench` near 10 minutes.
			cfg:     Config{Clients: 1000, Senders: 10, Rate: 10, Window: 16, Size: 64, Duration: d / 2, Warmup: 2 * time.Second},
			runs:    3,
			rank:    func(s *Summary) float64 { return s.Latency.P99 },
			servers: []string{"moonchat", "cluster1", "cluster3"},
		},
	}
}

// result is one run of one scenario against one server.
type result struct {
	Server   string   `json:"server"`
	Scenario string   `json:"scenario"`
	Run      int      `json:"run"`
	Summary  *Summary `json:"summary,omitempty"`
	Err      string   `json:"error,omitempty"`
	// Counters are cluster runs' moonchat_cluster_* counters, summed
	// over the nodes at the end of the run (scraped from /metrics).
	Counters map[string]float64 `json:"cluster_counters,omitempty"`
}

// BenchmarkSideBySide runs the whole comparison once, whatever b.N is: its
// figures are the load generator's, not b's timing.
func BenchmarkSideBySide(b *testing.B) {
	if os.Getenv(benchEnv) != "1" {
		b.Skip("side-by-side benchmark against gws (a few minutes): run with " + benchEnv + "=1, as `make bench` does")
	}
	var t testing.TB = b
	if _, err := raiseFileLimit(200000); err != nil {
		t.Logf("open file limit: %v (the idle run may fail)", err)
	}
	d := 10 * time.Second
	if v := os.Getenv(benchDurationEnv); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("%s: %v", benchDurationEnv, err)
		}
	}
	bins := benchBinaries{moonchat: os.Getenv(benchBinEnv)}
	if bins.moonchat == "" {
		bins.moonchat = goBuild(t, "github.com/moonchat/moonchat/cmd/moonchat")
	}
	started := time.Now()
	loadBefore := readLoadAvg()
	only := os.Getenv(benchOnlyEnv)
	var results []result
	for _, sc := range scenarios(d) {
		if only != "" && !slices.Contains(strings.Split(only, ","), sc.key) {
			continue
		}
		if sc.servers != nil && bins.nats == "" {
			bins.nats = goBuild(t, "github.com/nats-io/nats-server/v2")
		}
		for run := 1; run <= sc.runs; run++ {
			servers := sc.serverList()
			k := (run - 1) % len(servers)
			servers = append(slices.Clone(servers[k:]), servers[:k]...)
			for _, server := range servers {
				t.Logf("=== %s against %s (run %d of %d)", sc.key, server, run, sc.runs)
				res := runOne(t, bins, server, sc)
				res.Run = run
				if res.Err != "" {
					t.Errorf("%s against %s: %s", sc.key, server, res.Err)
				}
				line, _ := json.Marshal(res.Summary)
				t.Logf("%s %s: %s", sc.key, server, line)
				results = append(results, res)
			}
		}
	}
	if only != "" {
		fmt.Print(ratiosText(results))
		return
	}
	doc := renderDoc(docInput{
		Started: started, Took: time.Since(started), LoadBefore: loadBefore, LoadAfter: readLoadAvg(),
		Duration: d, Commit: benchCommit(), Results: results, Micro: readMicro(t),
	})
	out := os.Getenv(benchOutEnv)
	if out == "" {
		out = filepath.Join("..", "..", "..", "..", "docs", "performance.md")
	}
	doc += manualSection(out)
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		t.Fatalf("write %s: %v", out, err)
	}
	t.Logf("wrote %s", out)
	fmt.Print(ratiosText(results))
}

// benchBinaries are the programs the benchmark runs.
type benchBinaries struct {
	moonchat string
	nats     string // built only for the cluster scenario
}

// goBuild builds a main package into the test's temp dir.
func goBuild(t testing.TB, pkg string) string {
	bin := filepath.Join(t.TempDir(), filepath.Base(strings.TrimSuffix(pkg, "/v2")))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build %s: %v", pkg, err)
	}
	return bin
}

// runOne starts a fresh server (or cluster) and runs one scenario
// against it.
func runOne(t testing.TB, bins benchBinaries, server string, sc scenario) result {
	if n, ok := clusterNodes(server); ok {
		return runCluster(t, bins, n, sc)
	}
	res := result{Server: server, Scenario: sc.key}
	cfg := sc.cfg
	var srv *childServer
	if server == "moonchat" {
		srv = startMoonchat(t, bins.moonchat, "")
		cfg.URL = "ws://" + srv.addr + "/chat/bench"
		cfg.JoinProbes = sc.probes
	} else {
		srv = startGWS(t)
		cfg.URL = "ws://" + srv.addr + "/"
	}
	defer srv.stop()
	cfg.PID = srv.cmd.Process.Pid
	// Let the fresh process settle before its memory is sampled.
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
	return res
}

// startMoonchat runs `moonchat serve` with history on (a fresh store in a
// temp dir), the built-in default scripts, no flood control and limits
// high enough for the runs; extra is appended to its config (a
// [cluster] section).
func startMoonchat(t testing.TB, bin, extra string) *childServer {
	dir := t.TempDir()
	pprof := os.Getenv(benchPprofEnv)
	conf := fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
max_connections = 200000
max_queue_bytes = 67108864
pprof = %q
[chat]
flood_rate = 0
[store]
path = %q
[scripting]
dir = %q
enabled = true
%s`, pprof, filepath.Join(dir, "history.db"), filepath.Join(dir, "no-such-dir"), extra)
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "moonchat.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, "serve", "-config", confPath, "-ready-file", ready)
	cmd.Stdout, cmd.Stderr = logf, logf
	return startChild(t, cmd, ready)
}

// benchCommit names what was measured: MOONCHAT_BENCH_COMMIT, else git's
// HEAD (with a mark when tracked files differ from it), else "unknown".
func benchCommit() string {
	if c := os.Getenv(benchCommitEnv); c != "" {
		return c
	}
	out, err := exec.Command("git", "log", "-1", "--format=%h").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return "unknown (set " + benchCommitEnv + ")"
	}
	c := string(bytes.TrimSpace(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// readMicro returns the benchmark lines of the `go test -bench` output
// named by MOONCHAT_BENCH_MICRO.
func readMicro(t testing.TB) []string {
	path := os.Getenv(benchMicroEnv)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("micro-benchmarks: %v", err)
		return nil
	}
	var lines []string
	pkg := ""
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "pkg: "):
			pkg = strings.TrimPrefix(l, "pkg: github.com/moonchat/moonchat/")
		case strings.HasPrefix(l, "Benchmark"):
			lines = append(lines, pkg+" "+strings.Join(strings.Fields(l), " "))
		}
	}
	return lines
}

// machineFacts describes the machine from /proc.
func machineFacts() []string {
	facts := []string{"CPUs (runtime.NumCPU): " + strconv.Itoa(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				facts = append(facts, "CPU: "+strings.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		kb := statusKB(b, "MemTotal:")
		facts = append(facts, fmt.Sprintf("memory: %.1f GiB", float64(kb)/(1<<30)))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		facts = append(facts, "kernel: Linux "+strings.TrimSpace(string(b)))
	}
	facts = append(facts, "Go: "+runtime.Version())
	return facts
}

// manualMarker starts the hand-written part of docs/performance.md that
// the generator keeps.
const manualMarker = "<!-- manual section: kept as is by the generator -->"

func manualSection(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "\n" + manualMarker + "\n"
	}
	i := bytes.Index(b, []byte(manualMarker))
	if i < 0 {
		return "\n" + manualMarker + "\n"
	}
	return "\n" + string(b[i:])
}

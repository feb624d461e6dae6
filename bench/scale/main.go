// Command scale is the scale run of issue 15 (`make scale`): one
// nats-server with JetStream and several `moonchat serve` nodes in
// cluster mode on this machine, the real binaries in child processes, and
// the load generator split over as many `moonchat-bench -worker`
// processes as the per-process descriptor limit needs, holding
// -clients idle connections in one room spread over the nodes. It then
// times broadcasts that reach all of them (one message sent by one
// client, delivered by every node: from the send time in the payload to
// each client's receipt) and reports the broadcast time (p50, p99, max),
// each node's memory per connection (RSS growth / its connections) and
// the NATS server's memory. docs/performance.md ("Scale run") has the
// figures and how to read them.
//
//	make scale                                  # builds bin/moonchat, bin/moonchat-bench, bin/nats-server, then runs this
//	go run ./bench/scale -bin bin -clients 100000 -nodes 6
//
// Every wait is bounded (-timeout for the whole run, and a bound per
// phase); the run stops by itself and stops every process it started
// (SIGTERM, then SIGKILL), also when interrupted; its children die with
// it if it is killed (Pdeathsig). The result is printed and written as
// JSON to -out. Exit status: 0 when every connection was made and every
// broadcast reached every client, 1 otherwise.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	bin        string
	nodes      int
	clients    int
	workers    int
	room       string
	idle       time.Duration
	waves      int
	timeout    time.Duration
	connectFor time.Duration
	concurrent int
	out        string
	keep       bool
	commit     string
}

// Bounds of the phases that do not depend on the options.
const (
	startTimeout = 90 * time.Second // one process up and listening
	joinWaves    = 8                // barrier waves before giving up
	joinWait     = 20 * time.Second // per barrier wave
	waveTimeout  = 60 * time.Second // one measured broadcast reaches everyone
	settle       = 2 * time.Second  // between phases, for RSS to settle
	maxWaves     = 32               // the workers' limit (loadgen.maxWaves)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding moonchat, moonchat-bench and nats-server (make scale builds them)")
	fs.IntVar(&o.nodes, "nodes", 6, "moonchat nodes")
	fs.IntVar(&o.clients, "clients", 100000, "idle connections in the room, spread evenly over the nodes")
	fs.IntVar(&o.workers, "workers", 0, "load generator processes (0 = one per node; worker i connects to node i % nodes)")
	fs.StringVar(&o.room, "room", "scale", "the room")
	fs.DurationVar(&o.idle, "idle", 10*time.Second, "how long the connections stay idle before memory is sampled")
	fs.IntVar(&o.waves, "waves", 5, "timed broadcasts (each from the same client, one after another)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "the whole run at most")
	fs.DurationVar(&o.connectFor, "connect-timeout", 15*time.Minute, "connecting every client at most")
	fs.IntVar(&o.concurrent, "connect-concurrency", 32, "dials in progress at once per worker")
	fs.StringVar(&o.out, "out", "bin/scale.json", "the result as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (configs, logs, stores)")
	fs.StringVar(&o.commit, "commit", "", "what the binaries were built from, for the report (default: the work tree's git commit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.workers == 0 {
		o.workers = o.nodes
	}
	switch {
	case o.nodes < 1 || o.clients < o.workers || o.workers < 1:
		fmt.Fprintln(stderr, "scale: want -nodes >= 1, -workers >= 1 and -clients >= -workers")
		return 2
	case o.waves < 1 || o.waves > maxWaves-joinWaves:
		fmt.Fprintf(stderr, "scale: -waves must be 1 to %d\n", maxWaves-joinWaves)
		return 2
	case o.workers > 250:
		fmt.Fprintln(stderr, "scale: at most 250 workers (each has source addresses 127.1.W.1-4)")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := scale(ctx, o, stderr)
	if res != nil {
		printResult(stdout, res)
		if b, jerr := json.MarshalIndent(res, "", "  "); jerr == nil {
			if werr := os.WriteFile(o.out, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintf(stderr, "scale: %v\n", werr)
			} else {
				fmt.Fprintf(stderr, "scale: result in %s\n", o.out)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "scale: %v\n", err)
		return 1
	}
	return 0
}

// cluster is what one run started.
type cluster struct {
	dir     string
	nats    *proc
	natsURL string
	nodes   []*proc
	addrs   []string
	workers []*worker
}

// stopAll stops the workers (their clients close), then the nodes, then
// NATS, each bounded.
func (c *cluster) stopAll(log io.Writer) {
	for _, w := range c.workers {
		w.quit(30 * time.Second)
	}
	done := make(chan struct{})
	for _, n := range c.nodes {
		go func() {
			n.stop(30 * time.Second)
			done <- struct{}{}
		}()
	}
	for range c.nodes {
		<-done
	}
	if c.nats != nil {
		c.nats.stop(15 * time.Second)
	}
	fmt.Fprintln(log, "scale: every process stopped")
}

// logf prints a progress line with the time.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "scale %s: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func scale(ctx context.Context, o options, log io.Writer) (*Result, error) {
	res := &Result{
		Started: time.Now().UTC(), Commit: o.commit, Machine: machine(), LoadBefore: loadAvg(),
		Nodes: o.nodes, Workers: o.workers, Clients: o.clients, Room: o.room,
	}
	if res.Commit == "" {
		res.Commit = gitCommit()
	}
	bins := map[string]string{}
	for _, b := range []string{"moonchat", "moonchat-bench", "nats-server"} {
		p, err := filepath.Abs(filepath.Join(o.bin, b))
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v (make scale builds it)", b, err)
		}
		bins[b] = p
	}
	dir, err := os.MkdirTemp("", "moonchat-scale-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		logf(log, "run directory %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	c := &cluster{dir: dir}
	defer c.stopAll(log)

	if err := c.startNATS(bins["nats-server"]); err != nil {
		return res, err
	}
	logf(log, "nats-server pid %d at %s", c.nats.pid(), c.natsURL)
	if err := c.startNodes(ctx, bins["moonchat"], o.nodes); err != nil {
		return res, err
	}
	logf(log, "%d nodes listening: %s", o.nodes, strings.Join(c.addrs, " "))
	sleep(ctx, settle)
	before := c.sampleAll(res)

	if err := c.startWorkers(bins["moonchat-bench"], o); err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := c.waitConnected(ctx, o, res, log); err != nil {
		return res, err
	}
	for _, w := range c.workers {
		res.ConnectSec = max(res.ConnectSec, w.first.ConnectSec)
	}
	logf(log, "%d of %d connected in %.1fs", res.Connected, o.clients, res.ConnectSec)

	wave, err := c.barrier(ctx, res, log)
	if err != nil {
		return res, err
	}
	res.JoinedSec = time.Since(t0).Seconds()
	logf(log, "every client is in the room (%.1fs after the first dial); idle for %v", res.JoinedSec, o.idle)

	sleep(ctx, o.idle)
	after := c.sampleAll(res)
	res.memory(before, after, c)

	for k := range o.waves {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		sleep(ctx, settle)
		wave++
		b, err := c.broadcast(ctx, wave, res.Connected)
		if b != nil {
			b.Index = k + 1
			res.Broadcasts = append(res.Broadcasts, *b)
			logf(log, "broadcast %d: reached %d of %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms", k+1, b.Reached, res.Connected, b.All.P50, b.All.P99, b.All.Max)
		}
		if err != nil {
			return res, err
		}
	}
	final := c.sampleAll(res)
	for i := range res.PerNode {
		res.PerNode[i].RSSEndBytes = final.nodes[i].RSS
	}
	res.NATS.RSSEndBytes = final.nats.RSS
	res.LoadAfter = loadAvg()
	res.TookSec = time.Since(res.Started).Seconds()
	return res, nil
}

// startNATS runs nats-server with JetStream on a free loopback port, its
// store in the run's directory.
func (c *cluster) startNATS(bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("server_name: scale\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n}\n", port, filepath.Join(c.dir, "nats"))
	path := filepath.Join(c.dir, "nats-server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	c.nats, err = startProc(c.dir, "nats-server", nil, nil, bin, "-c", path)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c.natsURL = "nats://" + addr
	return c.nats.waitTCP(addr, startTimeout)
}

// nodeConfig is a node's config.toml: cluster mode on the run's NATS
// server; the per-address limits and flood control off for loopback
// (every client of the run comes from 127.x addresses, far more than
// max_connections_per_address and handshake_rate allow one address);
// the store and the built-in default scripts on, as in `make bench`, with
// hook_timeout raised from 100ms to 1s: on two shared cores, with every
// process of the run busy connecting 100,000 clients, the welcome
// script's join hook waited for CPU past 100ms often enough that a few
// joins were refused (1013; 4 of 100,000 in the first run).
func nodeConfig(dir, natsURL, name string) string {
	return fmt.Sprintf(`# generated by bench/scale
[server]
listen = "127.0.0.1:0"
max_connections = 50000
limits_exempt = ["127.0.0.0/8", "::1"]
shutdown_timeout = "20s"
close_timeout = "1s"

[chat]
flood_rate = 0

[store]
path = %q

[scripting]
dir = %q
hook_timeout = "1s"

[cluster]
nats_url = %q
node = %q
publish_timeout = "10s"
`, filepath.Join(dir, "moonchat.db"), filepath.Join(dir, "no-scripts-dir"), natsURL, name)
}

// startNodes starts the nodes: the first alone (it creates the stream),
// then the others together.
func (c *cluster) startNodes(ctx context.Context, bin string, n int) error {
	c.addrs = make([]string, n)
	start := func(i int) (string, error) {
		name := fmt.Sprintf("node-%d", i+1)
		dir := filepath.Join(c.dir, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", err
		}
		conf := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(conf, []byte(nodeConfig(dir, c.natsURL, name)), 0o600); err != nil {
			return "", err
		}
		ready := filepath.Join(dir, "ready")
		p, err := startProc(c.dir, name, nil, nil, bin, "serve", "-config", conf, "-ready-file", ready)
		if err != nil {
			return "", err
		}
		c.nodes[i] = p
		return p.waitReady(ready, startTimeout)
	}
	c.nodes = make([]*proc, n)
	var err error
	if c.addrs[0], err = start(0); err != nil {
		return err
	}
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		go func() {
			var err error
			c.addrs[i], err = start(i)
			errs <- err
		}()
	}
	for i := 1; i < n; i++ {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	nodes := c.nodes[:0]
	for _, p := range c.nodes {
		if p != nil {
			nodes = append(nodes, p)
		}
	}
	c.nodes = nodes
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// startWorkers starts the load workers: worker i holds its share of the
// clients, all on node i % nodes, bound to source addresses 127.1.i.1-4
// (one address's ports would do; four leave room).
func (c *cluster) startWorkers(bin string, o options) error {
	runID := fmt.Sprintf("sc%08x", time.Now().UnixNano()&0xffffffff)
	for i := range o.workers {
		share := o.clients / o.workers
		if i < o.clients%o.workers {
			share++
		}
		node := i % o.nodes
		url := "ws://" + c.addrs[node] + "/chat/" + o.room
		w, err := startWorker(c.dir, fmt.Sprintf("worker-%d", i+1), bin, node, share,
			"-worker", "-url", url, "-clients", fmt.Sprint(share), "-run-id", runID,
			"-source-ips", fmt.Sprintf("127.1.%d.1-127.1.%d.4", i+1, i+1),
			"-connect-concurrency", fmt.Sprint(o.concurrent), "-duration", o.timeout.String())
		if err != nil {
			return err
		}
		c.workers = append(c.workers, w)
	}
	return nil
}

// waitConnected waits for every worker's "connected" line, printing the
// nodes' descriptor counts meanwhile.
func (c *cluster) waitConnected(ctx context.Context, o options, res *Result, log io.Writer) error {
	deadline := time.Now().Add(o.connectFor)
	lastLog := time.Now()
	pending := len(c.workers)
	got := make([]bool, len(c.workers))
	for pending > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connecting: %d workers not done after %v", pending, o.connectFor)
		}
		for i, w := range c.workers {
			if got[i] {
				continue
			}
			select {
			case l, ok := <-w.lines:
				if !ok || l.Type != "connected" {
					return fmt.Errorf("%s did not connect: %s %v\n%s", w.name, l.Error, w.err, w.tail(10))
				}
				got[i], w.conns, w.first = true, l.Connections, l
				pending--
				res.Connected += l.Connections
				res.ConnectErrors += l.ConnectErrors
				if len(l.Errors) > 0 {
					res.Errors = append(res.Errors, fmt.Sprintf("%s: %s", w.name, strings.Join(l.Errors, "; ")))
				}
			default:
			}
		}
		if err := c.nodesAlive(); err != nil {
			return err
		}
		if pending > 0 && time.Since(lastLog) >= 5*time.Second {
			var fds []string
			for _, n := range c.nodes {
				m, _ := sample(n.pid())
				fds = append(fds, fmt.Sprint(m.FDs))
			}
			logf(log, "connecting: %d workers to go; descriptors per node %s", pending, strings.Join(fds, " "))
			lastLog = time.Now()
		}
		if pending > 0 {
			sleep(ctx, 250*time.Millisecond)
		}
	}
	if res.ConnectErrors > 0 {
		return fmt.Errorf("%d of %d clients could not connect (first errors: %v)", res.ConnectErrors, o.clients, res.Errors)
	}
	return nil
}

// nodesAlive fails when the NATS server or a node has exited.
func (c *cluster) nodesAlive() error {
	for _, p := range append([]*proc{c.nats}, c.nodes...) {
		if p.exited() {
			return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, p.tail(20))
		}
	}
	return nil
}

// count asks every worker how many of its clients got wave n.
func (c *cluster) count(n int) (int, error) {
	total := 0
	for _, w := range c.workers {
		l, err := w.ask(fmt.Sprintf("count %d", n))
		if err != nil {
			return 0, err
		}
		if l.Disconnects > 0 {
			return 0, fmt.Errorf("%s: %d clients disconnected", w.name, l.Disconnects)
		}
		total += l.Seen
	}
	return total, nil
}

// barrier sends waves from worker 1's first client until one reaches
// every client (a client is then a member of the room on its node), and
// returns that wave's number.
func (c *cluster) barrier(ctx context.Context, res *Result, log io.Writer) (int, error) {
	sender := c.workers[0]
	for n := range joinWaves {
		if _, err := sender.ask(fmt.Sprintf("send %d", n)); err != nil {
			return 0, err
		}
		deadline := time.Now().Add(joinWait)
		seen := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			var err error
			if seen, err = c.count(n); err != nil {
				return 0, err
			}
			if seen >= res.Connected {
				res.JoinWaves = n + 1
				return n, nil
			}
			if err := c.nodesAlive(); err != nil {
				return 0, err
			}
			sleep(ctx, 500*time.Millisecond)
		}
		logf(log, "join check %d reached %d of %d clients in %v", n+1, seen, res.Connected, joinWait)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("after %d join checks of %v some clients were still not in the room", joinWaves, joinWait)
}

// broadcast sends wave n and waits until it reached total clients (or
// waveTimeout), then gathers every arrival.
func (c *cluster) broadcast(ctx context.Context, n, total int) (*Broadcast, error) {
	if _, err := c.workers[0].ask(fmt.Sprintf("send %d", n)); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(waveTimeout)
	seen := 0
	for ctx.Err() == nil {
		var err error
		if seen, err = c.count(n); err != nil {
			return nil, err
		}
		if seen >= total || time.Now().After(deadline) {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	b := &Broadcast{Wave: n, Reached: seen}
	all := make([]int64, 0, seen)
	perNode := make([][]int64, len(c.nodes))
	for _, w := range c.workers {
		l, err := w.ask(fmt.Sprintf("arrivals %d", n))
		if err != nil {
			return nil, err
		}
		all = append(all, l.Micros...)
		perNode[w.node] = append(perNode[w.node], l.Micros...)
	}
	b.All = percentiles(all)
	for i, us := range perNode {
		b.PerNode = append(b.PerNode, NodeArrivals{Node: c.nodes[i].name, Arrivals: percentiles(us)})
	}
	if seen < total {
		return b, fmt.Errorf("broadcast %d reached %d of %d clients within %v", n, seen, total, waveTimeout)
	}
	return b, nil
}

// samples are the memory readings of every process at one moment.
type samples struct {
	nats    memory
	nodes   []memory
	workers []memory
}

func (c *cluster) sampleAll(res *Result) samples {
	var s samples
	var err error
	if s.nats, err = sample(c.nats.pid()); err != nil {
		res.Errors = append(res.Errors, "sample nats-server: "+err.Error())
	}
	for _, n := range c.nodes {
		m, err := sample(n.pid())
		if err != nil {
			res.Errors = append(res.Errors, "sample "+n.name+": "+err.Error())
		}
		s.nodes = append(s.nodes, m)
	}
	for _, w := range c.workers {
		m, _ := sample(w.pid())
		s.workers = append(s.workers, m)
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// gitCommit names the commit the binaries were built from, as far as the
// work tree tells (make scale builds them from it just before).
func gitCommit() string {
	out, err := exec.Command("git", "log", "-1", "--format=%h %cI %s").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " (work tree has uncommitted changes)"
	}
	return s
}

// machine describes this machine from /proc.
func machine() string {
	parts := []string{fmt.Sprintf("%d CPUs", runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(rest, &kb)
				parts = append(parts, fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20)))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(b)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		parts = append(parts, fmt.Sprintf("open file limit %d per process", lim.Max))
	}
	return strings.Join(parts, ", ")
}

func loadAvg() string {
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

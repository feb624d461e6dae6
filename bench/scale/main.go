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
	joinFor    time.Duration
	concurrent int
	out        string
	keep       bool
	commit     string
}

// Bounds of the phases that do not depend on the options.
const (
	startTimeout = 90 * time.Second // one process up and listening
	joinWaves    = 12               // barrier waves before giving up
	joinWait     = 10 * time.Second // the first barrier wave's wait; the next ones wait longer, at most joinWaitMax
	joinWaitMax  = time.Minute
	statusEvery  = 10 * time.Second // members per node while joining
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
	fs.DurationVar(&o.joinFor, "join-timeout", 10*time.Minute, "after that, every client a member of the room at most")
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
	c := &cluster{dir: dir, moonchat: bins["moonchat"], room: o.room}
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

	wave, err := c.barrier(ctx, t0, o.joinFor, res, log)
	if err != nil {
		return res, err
	}
	res.JoinedSec = time.Since(t0).Seconds()
	logf(log, "every client is in the room (%.1fs after the first dial); idle for %v", res.JoinedSec, o.idle)

	sleep(ctx, o.idle)
	after := c.sampleAll(res)
	res.memory(before, after, c)
	if st, err := c.status(bins["moonchat"]); err != nil {
		res.Errors = append(res.Errors, err.Error())
	} else {
		for i := range res.PerNode {
			n, ok := st[res.PerNode[i].Node]
			if !ok {
				res.Errors = append(res.Errors, res.PerNode[i].Node+" did not answer moonchat cluster status")
				continue
			}
			for _, r := range n.Rooms {
				if r.Room == o.room {
					res.PerNode[i].Members = r.Members
				}
			}
			res.PerNode[i].Lag = n.Lag
		}
	}

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

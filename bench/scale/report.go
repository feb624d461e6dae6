package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result is the outcome of one scale run (written as JSON to -out).
type Result struct {
	Started       time.Time `json:"started"`
	TookSec       float64   `json:"took_s"`
	Commit        string    `json:"commit"`
	Machine       string    `json:"machine"`
	LoadBefore    string    `json:"load_before"`
	LoadAfter     string    `json:"load_after"`
	Nodes         int       `json:"nodes"`
	Workers       int       `json:"workers"`
	Clients       int       `json:"clients"`
	Room          string    `json:"room"`
	Connected     int       `json:"connected"`
	ConnectErrors int       `json:"connect_errors"`
	// ConnectSec is the slowest worker's time to connect all its clients;
	// JoinedSec to the first wave that reached every client (each one a
	// member of the room); JoinWaves is how many waves that took.
	ConnectSec float64 `json:"connect_s"`
	JoinedSec  float64 `json:"joined_s"`
	JoinWaves  int     `json:"join_waves"`
	// NodeJoinedSec is when each node first counted all its clients as
	// members of the room, from the first dial (polled every 10 s while
	// joining and once when every client got a check message, so up to
	// 10 s late; a node missing never did while polled).
	NodeJoinedSec map[string]float64 `json:"node_joined_s,omitempty"`

	PerNode    []NodeMemory  `json:"per_node"`
	NATS       ProcessMemory `json:"nats"`
	PerWorker  []WorkerStats `json:"per_worker"`
	Broadcasts []Broadcast   `json:"broadcasts"`
	Errors     []string      `json:"errors,omitempty"`
}

// NodeMemory is one node's memory: RSS before any client, after the
// clients were idle, at the end; per connection = (idle - before) /
// connections.
type NodeMemory struct {
	Node           string  `json:"node"`
	Connections    int     `json:"connections"`
	RSSBeforeBytes int64   `json:"rss_before_bytes"`
	RSSIdleBytes   int64   `json:"rss_idle_bytes"`
	RSSEndBytes    int64   `json:"rss_end_bytes"`
	BytesPerConn   float64 `json:"bytes_per_conn"`
	FDs            int     `json:"fds"`
	// Members and Lag are what the node said of itself after the idle
	// time (moonchat cluster status): its members of the room, and the
	// stream records it had yet to apply.
	Members int    `json:"members"`
	Lag     *int64 `json:"lag"`
}

// ProcessMemory is the NATS server's RSS at the same moments.
type ProcessMemory struct {
	RSSBeforeBytes int64 `json:"rss_before_bytes"`
	RSSIdleBytes   int64 `json:"rss_idle_bytes"`
	RSSEndBytes    int64 `json:"rss_end_bytes"`
}

// WorkerStats is one load worker: its clients, its connect time and
// handshake latency, and its own memory per client.
type WorkerStats struct {
	Worker       string  `json:"worker"`
	Node         string  `json:"node"`
	Connections  int     `json:"connections"`
	ConnectSec   float64 `json:"connect_s"`
	HandshakeP99 float64 `json:"handshake_p99_ms"`
	RSSBytes     int64   `json:"rss_bytes"`
}

// Broadcast is one timed message: from its send time to each client's
// receipt, over all clients and per node (the clients of that node).
type Broadcast struct {
	Index   int            `json:"index"`
	Wave    int            `json:"wave"`
	Reached int            `json:"reached"`
	All     Percentiles    `json:"all_ms"`
	PerNode []NodeArrivals `json:"per_node"`
}

// NodeArrivals are the arrivals at one node's clients.
type NodeArrivals struct {
	Node     string      `json:"node"`
	Arrivals Percentiles `json:"arrivals_ms"`
}

// Percentiles of arrival times, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles of microsecond values (nearest rank), in milliseconds.
func percentiles(us []int64) Percentiles {
	if len(us) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(us)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		i = min(max(i, 0), len(s)-1)
		return float64(s[i]) / 1e3
	}
	return Percentiles{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: float64(s[len(s)-1]) / 1e3}
}

// memory fills the per-node and NATS memory from the samples before the
// clients and after the idle time.
func (r *Result) memory(before, idle samples, c *cluster) {
	conns := make([]int, len(c.nodes))
	for _, w := range c.workers {
		conns[w.node] += w.conns
	}
	r.PerNode = nil
	for i, n := range c.nodes {
		m := NodeMemory{Node: n.name, Connections: conns[i], RSSBeforeBytes: before.nodes[i].RSS,
			RSSIdleBytes: idle.nodes[i].RSS, FDs: idle.nodes[i].FDs}
		if conns[i] > 0 {
			m.BytesPerConn = float64(m.RSSIdleBytes-m.RSSBeforeBytes) / float64(conns[i])
		}
		r.PerNode = append(r.PerNode, m)
	}
	r.NATS = ProcessMemory{RSSBeforeBytes: before.nats.RSS, RSSIdleBytes: idle.nats.RSS}
	r.PerWorker = nil
	for i, w := range c.workers {
		r.PerWorker = append(r.PerWorker, WorkerStats{Worker: w.name, Node: c.nodes[w.node].name, Connections: w.conns,
			ConnectSec: w.first.ConnectSec, HandshakeP99: w.first.Handshake.P99, RSSBytes: idle.workers[i].RSS})
	}
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// printResult writes the result as Markdown, ready for
// docs/performance.md.
func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n## Scale run %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "- commit: %s\n- machine: %s\n- load average before: %s, after: %s; took %.0f s\n",
		r.Commit, r.Machine, r.LoadBefore, r.LoadAfter, r.TookSec)
	fmt.Fprintf(w, "- %d nodes, 1 nats-server, %d load workers; %d of %d clients connected (%d errors) in %.1f s, all in room %q after %.1f s (%d join check waves)\n\n",
		r.Nodes, r.Workers, r.Connected, r.Clients, r.ConnectErrors, r.ConnectSec, r.Room, r.JoinedSec, r.JoinWaves)
	if len(r.NodeJoinedSec) > 0 {
		var parts []string
		for _, n := range r.PerNode {
			if s, ok := r.NodeJoinedSec[n.Node]; ok {
				parts = append(parts, fmt.Sprintf("%s %.0f s", n.Node, s))
			} else {
				parts = append(parts, n.Node+" not seen")
			}
		}
		fmt.Fprintf(w, "Each node had all its clients as members (cluster status, polled every 10 s) after: %s.\n\n", strings.Join(parts, ", "))
	}
	if len(r.PerNode) > 0 {
		fmt.Fprintln(w, "| node | connections | members (cluster status) | RSS before MB | RSS idle MB | RSS end MB | bytes per connection |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		var conns int
		var grow int64
		for _, n := range r.PerNode {
			fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f | %.1f | %.0f |\n", n.Node, n.Connections, n.Members, mb(n.RSSBeforeBytes), mb(n.RSSIdleBytes), mb(n.RSSEndBytes), n.BytesPerConn)
			conns += n.Connections
			grow += n.RSSIdleBytes - n.RSSBeforeBytes
		}
		if conns > 0 {
			fmt.Fprintf(w, "| all | %d | | | | | %.0f |\n", conns, float64(grow)/float64(conns))
		}
		fmt.Fprintf(w, "| nats-server | | | %.1f | %.1f | %.1f | |\n\n", mb(r.NATS.RSSBeforeBytes), mb(r.NATS.RSSIdleBytes), mb(r.NATS.RSSEndBytes))
	}
	if len(r.Broadcasts) > 0 {
		fmt.Fprintln(w, "| broadcast | reached | p50 ms | p99 ms | max ms | slowest node's p50 / max ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
		for _, b := range r.Broadcasts {
			slow := NodeArrivals{}
			for _, n := range b.PerNode {
				if n.Arrivals.Max >= slow.Arrivals.Max {
					slow = n
				}
			}
			fmt.Fprintf(w, "| %d | %d | %.1f | %.1f | %.1f | %s %.1f / %.1f |\n", b.Index, b.Reached, b.All.P50, b.All.P99, b.All.Max,
				slow.Node, slow.Arrivals.P50, slow.Arrivals.Max)
		}
		fmt.Fprintln(w)
	}
	if len(r.PerWorker) > 0 {
		var parts []string
		for _, ws := range r.PerWorker {
			parts = append(parts, fmt.Sprintf("%s→%s %d in %.1f s (handshake p99 %.0f ms, RSS %.0f MB)",
				ws.Worker, ws.Node, ws.Connections, ws.ConnectSec, ws.HandshakeP99, mb(ws.RSSBytes)))
		}
		fmt.Fprintf(w, "Workers: %s.\n\n", strings.Join(parts, "; "))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "- problem: %s\n", e)
	}
}

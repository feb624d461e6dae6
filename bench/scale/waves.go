package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

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
// returns that wave's number. Wave n waits (n+1) × joinWait, at most
// joinWaitMax, for everyone (each wave is itself a broadcast to the
// clients already in, which slows the joins still under way); all of it
// within timeout and joinWaves waves. Meanwhile, every statusEvery, it
// asks the nodes how many members each has (moonchat cluster status) and
// notes when each had all its clients, counted from start (the first
// dial).
func (c *cluster) barrier(ctx context.Context, start time.Time, timeout time.Duration, res *Result, log io.Writer) (int, error) {
	sender := c.workers[0]
	end := time.Now().Add(timeout)
	conns := map[string]int{}
	for _, w := range c.workers {
		conns[c.nodes[w.node].name] += w.conns
	}
	res.NodeJoinedSec = map[string]float64{}
	lastStatus := time.Time{}
	poll := func(force bool) {
		if (!force && time.Since(lastStatus) < statusEvery) || len(res.NodeJoinedSec) == len(c.nodes) {
			return
		}
		lastStatus = time.Now()
		st, err := c.status(c.moonchat)
		if err != nil {
			logf(log, "%v", err)
			return
		}
		var counts []string
		for _, p := range c.nodes {
			n := 0
			for _, r := range st[p.name].Rooms {
				if r.Room == c.room {
					n = r.Members
				}
			}
			counts = append(counts, fmt.Sprint(n))
			if _, done := res.NodeJoinedSec[p.name]; !done && n >= conns[p.name] {
				res.NodeJoinedSec[p.name] = time.Since(start).Seconds()
			}
		}
		logf(log, "members per node (cluster status): %s", strings.Join(counts, " "))
	}
	for n := range joinWaves {
		if _, err := sender.ask(fmt.Sprintf("send %d", n)); err != nil {
			return 0, err
		}
		wait := min(time.Duration(n+1)*joinWait, joinWaitMax)
		deadline := time.Now().Add(wait)
		if deadline.After(end) {
			deadline = end
		}
		seen := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			var err error
			if seen, err = c.count(n); err != nil {
				return 0, err
			}
			if seen >= res.Connected {
				res.JoinWaves = n + 1
				poll(true)
				return n, nil
			}
			if err := c.nodesAlive(); err != nil {
				return 0, err
			}
			poll(false)
			sleep(ctx, 500*time.Millisecond)
		}
		logf(log, "join check %d reached %d of %d clients in %v", n+1, seen, res.Connected, wait)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !time.Now().Before(end) {
			return 0, fmt.Errorf("join checks: %d of %d clients in the room after %v", seen, res.Connected, timeout)
		}
	}
	return 0, fmt.Errorf("after %d join checks some clients were still not in the room", joinWaves)
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

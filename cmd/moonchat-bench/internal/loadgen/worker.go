package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Worker mode (`moonchat-bench -worker`) is one process of a load split
// over several: one process holds at most what its open file limit allows
// (20,000 descriptors on the machine of docs/performance.md), so the scale
// run (bench/scale) starts several workers, each holding its share of the
// clients in the same room, and drives them all through their standard
// input and output. The workers share a run id (Config.RunID), so each one
// recognises a broadcast that another worker's client sent.
//
// A worker connects its clients, prints one "connected" line, then obeys
// one command per input line until `quit`, the end of its input (the
// driver is gone) or Config.Duration (its longest life), whichever comes
// first, and closes its clients. Every answer is one JSON line on out:
//
//	send N      client 0 sends wave N (0 <= N < 32): {"type":"sent","wave":N,"sent_ns":T}
//	count N     how many clients got wave N: {"type":"count","wave":N,"seen":S,"connections":C,"disconnects":D}
//	arrivals N  each of those clients' latency, from the send time in the
//	            wave's payload to its arrival, in microseconds:
//	            {"type":"arrivals","wave":N,"us":[…]}
//	quit        close the clients and exit
//
// A wave is an ordinary chat message (kind 'w' in the payload), so a
// server delivers it like any other; the driver uses the first waves to
// check that every client is in the room and the later ones to time the
// broadcast. The send time is the sending worker's clock and the arrival
// the receiving worker's: workers must run on one machine.

// maxWaves bounds the waves of one worker run (memory: one latency slot
// per client per wave).
const maxWaves = 32

// wave records which clients got one wave, and when.
type wave struct {
	seen atomic.Int64
	// lat[client id] is the latency in nanoseconds plus one; 0 = not
	// arrived.
	lat []atomic.Int64
}

// arrive records that client id got the wave after d (the first arrival
// only).
func (w *wave) arrive(id int, d time.Duration) {
	if id >= len(w.lat) {
		return
	}
	if w.lat[id].CompareAndSwap(0, int64(max(d, 0))+1) {
		w.seen.Add(1)
	}
}

// WorkerLine is one JSON line a worker prints (the fields of its type).
type WorkerLine struct {
	Type string `json:"type"` // connected, sent, count, arrivals, error

	// connected
	Connections   int      `json:"connections,omitempty"`
	ConnectErrors int      `json:"connect_errors,omitempty"`
	ConnectSec    float64  `json:"connect_s,omitempty"`
	Handshake     Percents `json:"handshake_ms,omitzero"`
	Errors        []string `json:"errors,omitempty"`

	// sent, count, arrivals
	Wave        int     `json:"wave"`
	SentNS      int64   `json:"sent_ns,omitempty"`
	Seen        int     `json:"seen,omitempty"`
	Disconnects int     `json:"disconnects,omitempty"`
	Micros      []int64 `json:"us,omitempty"`

	// error
	Error string `json:"error,omitempty"`
}

// RunWorker runs cfg as one worker of a split load (see above): cmds is
// the driver's input, out gets the JSON lines, progress the connect
// progress. cfg.Duration bounds the worker's life. It returns an error
// when the worker could not start (bad config, nobody connected) or out
// failed.
func RunWorker(ctx context.Context, cfg Config, cmds io.Reader, out io.Writer, progress io.Writer) error {
	cfg.Idle = true // client 0 sends; nobody else does
	cfg.Senders = 1
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	r := newRunner(cfg, progress)
	defer r.closeAll()
	r.waves = new([maxWaves]wave)
	for i := range r.waves {
		r.waves[i].lat = make([]atomic.Int64, cfg.Clients)
	}
	enc := json.NewEncoder(out)

	start := time.Now()
	if err := r.connect(ctx); err != nil {
		_ = enc.Encode(WorkerLine{Type: "error", Error: err.Error()})
		return err
	}
	r.members.Store(int64(len(r.clients)))
	hs := percents(&r.handshake)
	fmt.Fprintf(r.log, "bench: worker %d/%d connected in %.1fs (handshake p50 %.2fms p99 %.2fms)\n",
		len(r.clients), cfg.Clients, time.Since(start).Seconds(), hs.P50, hs.P99)
	if err := enc.Encode(WorkerLine{Type: "connected", Connections: len(r.clients), ConnectErrors: cfg.Clients - len(r.clients),
		ConnectSec: time.Since(start).Seconds(), Handshake: hs, Errors: r.errors()}); err != nil {
		return err
	}

	// The reader of cmds is the goroutine below; it ends with cmds (the
	// driver closes it, or the process exits), so it may outlive this
	// call only as long as a blocked read of a pipe nobody drives.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(cmds)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil // its life is over, or a signal
		case line, ok = <-lines:
		}
		if !ok || strings.TrimSpace(line) == "quit" {
			return nil
		}
		if err := enc.Encode(r.command(line)); err != nil {
			return err
		}
	}
}

// command runs one driver command and returns its answer.
func (r *runner) command(line string) WorkerLine {
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 0 || n >= maxWaves {
		return WorkerLine{Type: "error", Error: fmt.Sprintf("%q: want VERB N with 0 <= N < %d", line, maxWaves)}
	}
	w := &r.waves[n]
	switch verb {
	case "send":
		now := time.Now().UnixNano()
		buf := r.appendEvent(nil, payload{kind: kindWave, seq: uint64(n), sent: now}, r.cfg.Size)
		if err := r.clients[0].conn.WriteText(buf); err != nil {
			return WorkerLine{Type: "error", Wave: n, Error: "send: " + err.Error()}
		}
		return WorkerLine{Type: "sent", Wave: n, SentNS: now}
	case "count":
		r.mu.Lock()
		d := r.disconnects
		r.mu.Unlock()
		return WorkerLine{Type: "count", Wave: n, Seen: int(w.seen.Load()), Connections: len(r.clients), Disconnects: d}
	case "arrivals":
		us := make([]int64, 0, w.seen.Load())
		for i := range w.lat {
			if v := w.lat[i].Load(); v != 0 {
				us = append(us, (v-1)/1e3)
			}
		}
		return WorkerLine{Type: "arrivals", Wave: n, Micros: us}
	}
	return WorkerLine{Type: "error", Error: fmt.Sprintf("%q: unknown command (send, count, arrivals, quit)", line)}
}

// errors returns a copy of the errors kept so far.
func (r *runner) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

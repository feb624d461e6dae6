package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Phase timeouts that do not depend on the configuration. Every wait in a
// run is bounded by one of these, by Config.Duration/Warmup/DrainTimeout,
// or by ctx.
const (
	barrierTimeout  = 30 * time.Second // every client sees a message of this run
	barrierInterval = 250 * time.Millisecond
	idleTimeout     = 30 * time.Second // the idle-mode broadcast reaches everyone
	probeTimeout    = 10 * time.Second // one join probe
	histShards      = 16               // latency histograms, to spread atomic adds
	maxErrors       = 5                // errors kept in the summary
)

// runner is one run in progress.
type runner struct {
	cfg   Config
	runID string
	json  bool
	log   io.Writer

	clients []*client
	members atomic.Int64 // connected clients when the load starts (read by the readers)

	// Measured-time bounds in Unix nanoseconds (0 until known).
	measureFrom, measureTo atomic.Int64
	stopping               atomic.Bool

	hist      [histShards]Histogram // per delivery
	urlHist   []Histogram           // per delivery, per URL (several URLs only)
	msgHist   Histogram             // per message, at its last member
	handshake Histogram
	windows   []*senderWindow
	messages  atomic.Uint64 // completed in the measured time
	completed atomic.Uint64 // completed at all
	barrier   atomic.Int64  // clients that saw the barrier
	idleSeen  atomic.Int64
	idleHist  Histogram
	waves     *[maxWaves]wave // worker mode only (RunWorker)

	mu          sync.Mutex
	errs        []string
	disconnects int

	// Receive side: pool holds the epoll reader loops (nil: a goroutine
	// per client). readers counts the clients still being read, on either
	// path; readEnded marks one done.
	pool    *readerPool
	readers sync.WaitGroup
}

// client is one connection and its reader's state.
type client struct {
	id         int
	url        int // index in Config.URLs
	conn       *Conn
	seq        seqState
	delivered  atomic.Uint64 // this run's measured messages received, all phases
	reordered  atomic.Uint64
	sawBarrier bool // reader only (its goroutine or its epoll loop)
	sawIdle    bool
}

// senderWindow tracks one sender's messages in flight. Slot seq%W holds
// the message with that sequence number and how many members got it;
// since every member receives a sender's messages in order, messages
// complete in order and a slot is free again when its message completes.
type senderWindow struct {
	slots  []windowSlot
	tokens chan struct{}
	sent   atomic.Uint64
}

type windowSlot struct {
	seq   atomic.Uint64
	count atomic.Int64
	_     [48]byte // one slot per cache line: receivers hit them concurrently
}

// Run performs one load (or idle) run described by cfg, writing progress
// lines to progress (may be nil), and returns its summary. It returns an
// error only when the run could not take place (bad config, nobody
// connected); problems during the run are in Summary.Errors.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRunner(cfg, progress)
	defer r.closeAll()
	return r.run(ctx)
}

// newRunner makes the runner of a validated cfg: its run id, the open
// file limit raised, its receive path.
func newRunner(cfg Config, progress io.Writer) *runner {
	if progress == nil {
		progress = io.Discard
	}
	runID := cfg.RunID
	if runID == "" {
		var id [4]byte
		for i := range id {
			id[i] = byte(rand.Uint32())
		}
		runID = hex.EncodeToString(id[:])
	}
	r := &runner{cfg: cfg, runID: runID, json: cfg.Format == "json", log: progress}
	if len(cfg.URLs) > 1 {
		r.urlHist = make([]Histogram, len(cfg.URLs))
	}
	if _, err := raiseFileLimit(uint64(cfg.Clients + cfg.JoinProbes + 1024)); err != nil {
		r.errorf("raise the open file limit: %v", err)
	}
	if !cfg.GoroutineReaders {
		pool, err := newReaderPool(runtime.GOMAXPROCS(0))
		switch {
		case err == nil:
			r.pool = pool
		case !errors.Is(err, errors.ErrUnsupported):
			fmt.Fprintf(progress, "bench: no epoll readers (%v): one reader goroutine per client\n", err)
		}
	}
	return r
}

func (r *runner) errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < maxErrors {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	cfg := r.cfg
	sum := &Summary{
		Mode: "load", URL: cfg.URL, Format: cfg.Format, Clients: cfg.Clients,
		Senders: cfg.Senders, Window: cfg.Window, Size: cfg.Size, Rate: cfg.Rate,
		DurationSec: cfg.Duration.Seconds(), Readers: "goroutines",
	}
	if r.pool != nil {
		sum.Readers = "epoll"
	}
	if cfg.Idle {
		sum.Mode, sum.Senders = "idle", 1 // client 0 sends the one broadcast
	}
	var before procSample
	if cfg.PID != 0 {
		var err error
		if before, err = sampleProc(cfg.PID); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	sum.ConnectSec = time.Since(start).Seconds()
	sum.Connections = len(r.clients)
	sum.ConnectErrors = cfg.Clients - len(r.clients)
	sum.Handshake = percents(&r.handshake)
	r.members.Store(int64(len(r.clients)))
	fmt.Fprintf(r.log, "bench: %d/%d connected in %.1fs (handshake p50 %.2fms p99 %.2fms)\n",
		len(r.clients), cfg.Clients, sum.ConnectSec, sum.Handshake.P50, sum.Handshake.P99)

	if err := r.waitBarrier(ctx); err != nil {
		r.errorf("%v", err)
	}

	if cfg.Idle {
		r.idle(ctx, sum, before)
	} else {
		r.load(ctx, sum)
	}
	if cfg.JoinProbes > 0 && ctx.Err() == nil {
		sum.JoinProbe = r.probeJoins(ctx)
	}
	r.mu.Lock()
	sum.Disconnects = r.disconnects
	sum.Errors = append([]string(nil), r.errs...)
	r.mu.Unlock()
	return sum, ctx.Err()
}

// connect dials every client with bounded concurrency and starts its
// reader as soon as its handshake is done. Clients that fail to connect are left out (and counted).
func (r *runner) connect(ctx context.Context) error {
	cfg := r.cfg
	urls := make([]*url.URL, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		urls[i], _ = url.Parse(raw) // Validate parsed them
	}
	var protos []string
	if r.json {
		protos = []string{"moonchat.v1"}
	}
	senders := cfg.Senders
	if cfg.Idle {
		senders = 1
	}
	// Each reader starts right after its handshake: a server sends every
	// member notices while the others join, and unread notices piling up
	// in thousands of socket buffers push the kernel into TCP memory
	// pressure (dropped packets, retransmission back-off) that would then
	// be measured as broadcast latency.
	clients := make([]*client, cfg.Clients)
	var next atomic.Int64
	var done atomic.Int64
	var wg sync.WaitGroup
	stopTick := r.ticker(func() string {
		return fmt.Sprintf("connecting %d/%d", done.Load(), cfg.Clients)
	})
	for range min(cfg.ConnectConcurrency, cfg.Clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Clients {
					return
				}
				opts := DialOptions{Subprotocols: protos, ReadBufferSize: cfg.ReadBufferSize, TLSRoots: cfg.TLSRoots}
				if n := len(cfg.SourceIPs); n > 0 {
					opts.LocalAddr = cfg.SourceIPs[i%n]
				}
				dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
				t0 := time.Now()
				ui := i % len(urls)
				c, err := Dial(dctx, withName(urls[ui], r.name(i)), opts)
				cancel()
				if err != nil {
					r.errorf("client %d: %v", i, err)
					continue
				}
				r.handshake.Record(time.Since(t0))
				cl := &client{id: i, url: ui, conn: c, seq: newSeqState(senders)}
				clients[i] = cl
				r.startReading(cl)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	stopTick()
	for _, cl := range clients {
		if cl != nil {
			r.clients = append(r.clients, cl)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(r.clients) == 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return fmt.Errorf("no client could connect to %s: %v", strings.Join(cfg.URLs, ", "), r.errs)
	}
	if len(r.clients) < cfg.Senders {
		return fmt.Errorf("only %d clients connected, fewer than the %d senders", len(r.clients), cfg.Senders)
	}
	return nil
}

// startReading hands a connected client to the epoll readers, or to a
// goroutine of its own when there are none (Config.GoroutineReaders, not
// Linux) or its socket cannot be detached.
func (r *runner) startReading(cl *client) {
	r.readers.Add(1)
	if r.pool != nil {
		err := r.pool.add(cl.conn,
			func(op ws.Opcode, data []byte) { r.deliver(cl, op, data) },
			func(err error) { r.readEnded(cl, err) })
		if err == nil {
			return
		}
		r.errorf("client %d: epoll reader: %v", cl.id, err)
	}
	go r.read(cl)
}

// name is client i's nickname: unique to the run, short enough for any
// max_name_length of at least 16.
func (r *runner) name(i int) string { return "lg" + r.runID[:6] + "-" + strconv.Itoa(i) }

// withName adds name=NAME to the room URL.
func withName(u *url.URL, name string) string {
	v := *u
	q := v.Query()
	q.Set("name", name)
	v.RawQuery = q.Encode()
	return v.String()
}

// ticker prints status() once a second until the returned stop is called.
func (r *runner) ticker(status func() string) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(r.log, "bench: %3.0fs %s\n", now.Sub(start).Seconds(), status())
			}
		}
	}()
	return func() { close(done); <-exited }
}

// read is a client's reader goroutine (the portable receive path): it
// runs until the connection ends.
func (r *runner) read(cl *client) {
	for {
		op, data, err := cl.conn.ReadMessage()
		if err != nil {
			r.readEnded(cl, err)
			return
		}
		r.deliver(cl, op, data)
	}
}

// readEnded accounts for the end of a client's reading (on either receive
// path, exactly once per client): a disconnect unless the run is
// stopping.
func (r *runner) readEnded(cl *client, err error) {
	defer r.readers.Done()
	if r.stopping.Load() {
		return
	}
	r.mu.Lock()
	r.disconnects++
	r.mu.Unlock()
	r.errorf("client %d disconnected: %v", cl.id, err)
}

// deliver handles one message a client received (on either receive path;
// calls for one client never overlap): barrier and idle notices, and this
// run's messages, checked for order, timed and tracked to completion.
func (r *runner) deliver(cl *client, op ws.Opcode, data []byte) {
	if op != ws.OpText {
		return
	}
	text, ok := messageText(data, r.json)
	if !ok {
		return
	}
	p, ok := parsePayload(text, r.runID)
	if !ok {
		return
	}
	now := time.Now()
	switch p.kind {
	case kindBarrier:
		if !cl.sawBarrier {
			cl.sawBarrier = true
			r.barrier.Add(1)
		}
	case kindWave:
		if r.waves != nil && p.seq < maxWaves {
			r.waves[p.seq].arrive(cl.id, now.Sub(time.Unix(0, p.sent)))
		}
	case kindIdle:
		if !cl.sawIdle {
			cl.sawIdle = true
			r.idleHist.Record(now.Sub(time.Unix(0, p.sent)))
			r.idleSeen.Add(1)
		}
	case kindMessage:
		if p.sender >= len(cl.seq.next) {
			return
		}
		if cl.seq.observe(p.sender, p.seq) {
			cl.reordered.Add(1)
		}
		cl.delivered.Add(1)
		ns := now.UnixNano()
		if from := r.measureFrom.Load(); from != 0 && ns >= from && ns < r.measureTo.Load() {
			d := time.Duration(ns - p.sent)
			r.hist[cl.id%histShards].Record(d)
			if r.urlHist != nil {
				r.urlHist[cl.url].Record(d)
			}
		}
		r.track(p, ns)
	}
}

// track counts one delivery towards its message's completion and releases
// the sender's window slot when the last member got it.
func (r *runner) track(p payload, now int64) {
	if p.sender >= len(r.windows) {
		return
	}
	w := r.windows[p.sender]
	s := &w.slots[p.seq%uint64(len(w.slots))]
	if s.seq.Load() != p.seq || s.count.Add(1) != r.members.Load() {
		return
	}
	r.completed.Add(1)
	if from := r.measureFrom.Load(); from != 0 && now >= from && now < r.measureTo.Load() {
		r.messages.Add(1)
		r.msgHist.Record(time.Duration(now - p.sent))
	}
	select {
	case w.tokens <- struct{}{}:
	default: // cannot happen: one token per slot
	}
}

// waitBarrier has client 0 send a barrier message every barrierInterval
// until every client got one: then every client is a member of the room
// (servers may admit a connection some time after its handshake).
func (r *runner) waitBarrier(ctx context.Context) error {
	deadline := time.Now().Add(barrierTimeout)
	sender := r.clients[0]
	var buf []byte
	for k := uint64(0); ; k++ {
		buf = r.appendEvent(buf[:0], payload{kind: kindBarrier, seq: k, sent: time.Now().UnixNano()}, 0)
		if err := sender.conn.WriteText(buf); err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		wait := time.NewTimer(barrierInterval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		case <-wait.C:
		}
		if int(r.barrier.Load()) >= len(r.clients) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("barrier: only %d of %d clients got a message within %v", r.barrier.Load(), len(r.clients), barrierTimeout)
		}
	}
}

// load runs the senders through warmup and the measured time, then waits
// for the messages in flight.
func (r *runner) load(ctx context.Context, sum *Summary) {
	cfg := r.cfg
	r.windows = make([]*senderWindow, cfg.Senders)
	for i := range r.windows {
		w := &senderWindow{slots: make([]windowSlot, cfg.Window), tokens: make(chan struct{}, cfg.Window)}
		for range cfg.Window {
			w.tokens <- struct{}{}
		}
		r.windows[i] = w
	}
	start := time.Now()
	from, to := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	r.measureTo.Store(to.UnixNano())
	r.measureFrom.Store(from.UnixNano())

	sctx, cancel := context.WithDeadline(ctx, to)
	defer cancel()
	var senders sync.WaitGroup
	for i := range cfg.Senders {
		senders.Add(1)
		go func() {
			defer senders.Done()
			r.send(sctx, i, r.clients[i])
		}()
	}

	var first, last procSample
	var lastDeliv uint64
	lastAt := start
	stopTick := r.ticker(func() string {
		d := r.deliveredTotal()
		now := time.Now()
		rate := float64(d-lastDeliv) / now.Sub(lastAt).Seconds()
		lastDeliv, lastAt = d, now
		phase := "warmup"
		if now.After(from) {
			phase = "measure"
		}
		line := fmt.Sprintf("%s sent=%d delivered=%d deliveries/s=%.0f p99=%.2fms", phase, r.sentTotal(), d, rate, ms(r.mergedHist().Percentile(0.99)))
		if cfg.PID != 0 {
			if s, err := sampleProc(cfg.PID); err == nil {
				line += fmt.Sprintf(" server cpu=%.0f%% rss=%.1fMB", cpuPercent(last, s), float64(s.rss)/1e6)
				last = s
			}
		}
		return line
	})
	if cfg.PID != 0 {
		first, _ = sampleProc(cfg.PID)
		last = first
	}
	firstMore := sampleProcs(cfg.PIDs)

	// Sample the server right at the measured time's edges.
	if (cfg.PID != 0 || len(cfg.PIDs) > 0) && cfg.Warmup > 0 {
		t := time.NewTimer(cfg.Warmup)
		select {
		case <-t.C:
			if cfg.PID != 0 {
				first, _ = sampleProc(cfg.PID)
			}
			firstMore = sampleProcs(cfg.PIDs)
		case <-ctx.Done():
			t.Stop()
		}
	}
	senders.Wait()
	var end procSample
	if cfg.PID != 0 {
		end, _ = sampleProc(cfg.PID)
	}
	for i, e := range sampleProcs(cfg.PIDs) {
		sum.Processes = append(sum.Processes, ServerStats{PID: cfg.PIDs[i], CPUPercent: cpuPercent(firstMore[i], e),
			RSSBytes: e.rss, RSSStartBytes: firstMore[i].rss, RSSPeakBytes: e.rssPeak})
	}

	// Drain: wait for the messages in flight to reach everyone.
	sent := r.sentTotal()
	drainBy := time.Now().Add(cfg.DrainTimeout)
	for r.completed.Load() < sent && time.Now().Before(drainBy) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stopTick()

	sum.MessagesSent = sent
	sum.Messages = r.messages.Load()
	sum.MessagesPerSec = float64(sum.Messages) / cfg.Duration.Seconds()
	h := r.mergedHist()
	sum.Latency = percents(h)
	sum.Deliveries = h.Count()
	sum.DeliveriesPerSec = float64(sum.Deliveries) / cfg.Duration.Seconds()
	sum.MessageLatency = percents(&r.msgHist)
	var delivered, reordered uint64
	for _, cl := range r.clients {
		delivered += cl.delivered.Load()
		reordered += cl.reordered.Load()
	}
	sum.Lost = Lost(sent, int(r.members.Load()), delivered)
	sum.Reordered = reordered
	if r.urlHist != nil {
		conns := make([]int, len(cfg.URLs))
		for _, cl := range r.clients {
			conns[cl.url]++
		}
		for i := range r.urlHist {
			h := &r.urlHist[i]
			sum.PerURL = append(sum.PerURL, URLStats{URL: cfg.URLs[i], Connections: conns[i], Deliveries: h.Count(),
				DeliveriesPerSec: float64(h.Count()) / cfg.Duration.Seconds(), Latency: percents(h)})
		}
	}
	if cfg.PID != 0 {
		sum.Server = &ServerStats{PID: cfg.PID, CPUPercent: cpuPercent(first, end), RSSBytes: end.rss,
			RSSStartBytes: first.rss, RSSPeakBytes: end.rssPeak}
	}
}

func (r *runner) sentTotal() uint64 {
	var n uint64
	for _, w := range r.windows {
		n += w.sent.Load()
	}
	return n
}

func (r *runner) deliveredTotal() uint64 {
	var n uint64
	for _, cl := range r.clients {
		n += cl.delivered.Load()
	}
	return n
}

// mergedHist returns the per-delivery latencies of all shards.
func (r *runner) mergedHist() *Histogram {
	h := new(Histogram)
	for i := range r.hist {
		h.Merge(&r.hist[i])
	}
	return h
}

// send is sender i's loop: it runs until ctx ends (the measured time is
// over), keeping at most Window messages in flight and, with a rate, at
// most Rate messages per second.
func (r *runner) send(ctx context.Context, i int, cl *client) {
	cfg := r.cfg
	w := r.windows[i]
	bufs := make([][]byte, cfg.Window)
	batch := make([][]byte, 0, cfg.Window)
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	// Spread the senders' schedules over one interval.
	next := time.Now().Add(interval * time.Duration(i) / time.Duration(max(cfg.Senders, 1)))
	var timer *time.Timer
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.tokens:
		}
		n := 1
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
			}
			next = next.Add(interval)
		} else {
		more:
			for n < cfg.Window {
				select {
				case <-w.tokens:
					n++
				default:
					break more
				}
			}
		}
		now := time.Now().UnixNano()
		batch = batch[:0]
		for k := range n {
			seq++
			s := &w.slots[seq%uint64(len(w.slots))]
			s.count.Store(0)
			s.seq.Store(seq)
			bufs[k] = r.appendEvent(bufs[k][:0], payload{kind: kindMessage, sender: i, seq: seq, sent: now}, cfg.Size)
			batch = append(batch, bufs[k])
		}
		w.sent.Add(uint64(n))
		if err := cl.conn.WriteText(batch...); err != nil {
			if !r.stopping.Load() {
				r.errorf("sender %d: %v", i, err)
			}
			return
		}
	}
}

// idle holds the clients idle for the duration, samples the server's
// memory, then times one broadcast from client 0 to everyone.
func (r *runner) idle(ctx context.Context, sum *Summary, before procSample) {
	cfg := r.cfg
	stopTick := r.ticker(func() string {
		line := fmt.Sprintf("idle %d connections", len(r.clients))
		if cfg.PID != 0 {
			if s, err := sampleProc(cfg.PID); err == nil {
				line += fmt.Sprintf(" server rss=%.1fMB", float64(s.rss)/1e6)
			}
		}
		return line
	})
	t := time.NewTimer(cfg.Duration)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	stopTick()
	st := &IdleStats{}
	sum.Idle = st
	if cfg.PID != 0 {
		if after, err := sampleProc(cfg.PID); err == nil {
			st.RSSBeforeBytes, st.RSSAfterBytes = before.rss, after.rss
			st.BytesPerConn = float64(after.rss-before.rss) / float64(len(r.clients))
			sum.Server = &ServerStats{PID: cfg.PID, CPUPercent: cpuPercent(before, after), RSSBytes: after.rss,
				RSSStartBytes: before.rss, RSSPeakBytes: after.rssPeak}
		}
	}
	buf := r.appendEvent(nil, payload{kind: kindIdle, sent: time.Now().UnixNano()}, cfg.Size)
	if err := r.clients[0].conn.WriteText(buf); err != nil {
		r.errorf("idle broadcast: %v", err)
		return
	}
	deadline := time.Now().Add(idleTimeout)
	for int(r.idleSeen.Load()) < len(r.clients) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	st.Reached = int(r.idleSeen.Load())
	st.Arrival = percents(&r.idleHist)
	st.BroadcastMS = st.Arrival.Max
	if st.Reached < len(r.clients) {
		r.errorf("idle broadcast reached %d of %d clients within %v", st.Reached, len(r.clients), idleTimeout)
	}
}

// probeJoins times JoinProbes joins, one after another, of a fresh client:
// from the dial to the history event that carries its replay. Probes speak
// moonchat.v1 (JSON) whatever the run's format: there the history event
// marks the end of the replay exactly, while a plain client can only
// wait for its own "* NAME joined" notice, which a big room coalesces and
// sends up to announce_interval later — probes would then start in step
// with the room's announcement broadcasts instead of at unrelated times.
func (r *runner) probeJoins(ctx context.Context) *JoinStats {
	cfg := r.cfg
	u, _ := url.Parse(cfg.URL)
	protos := []string{"moonchat.v1"}
	st := &JoinStats{Probes: cfg.JoinProbes}
	var h Histogram
	for i := range cfg.JoinProbes {
		if ctx.Err() != nil {
			break
		}
		name := "lg" + r.runID + "p" + strconv.Itoa(i)
		d, replayed, err := r.probeOne(ctx, withName(u, name), name, protos)
		if err != nil {
			st.Failed++
			r.errorf("join probe %d: %v", i, err)
			continue
		}
		h.Record(d)
		st.Replayed = replayed
	}
	st.Time = percents(&h)
	return st
}

var (
	errProbeTimeout = errors.New("no history event in time")
	errProbeFormat  = errors.New("the server did not accept the moonchat.v1 subprotocol (join probes need a moonchat server)")
)

// probeOne times one join: from the dial to the moonchat.v1 history
// event that carries the replay. A probe is a plain one-off client, so it
// is core/ws's ClientConn (the load's clients are this package's Conn).
func (r *runner) probeOne(ctx context.Context, rawURL, name string, protos []string) (time.Duration, int, error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	t0 := time.Now()
	c, _, err := ws.Dial(pctx, rawURL, &ws.DialOptions{Subprotocols: protos, TLSConfig: &tls.Config{RootCAs: r.cfg.TLSRoots}})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(ws.StatusNormalClosure, "")
	if c.Subprotocol() != "moonchat.v1" {
		return 0, 0, errProbeFormat
	}
	for {
		_, data, err := c.ReadMessage(pctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, 0, errProbeTimeout
			}
			return 0, 0, err
		}
		if bytes.HasPrefix(data, []byte(`{"type":"history"`)) {
			return time.Since(t0), bytes.Count(data, []byte(`"id":`)), nil
		}
	}
}

// closeAll closes every client, waits for the readers, then stops the
// reader loops.
func (r *runner) closeAll() {
	r.stopping.Store(true)
	for _, cl := range r.clients {
		_ = cl.conn.Close()
	}
	r.readers.Wait()
	if r.pool != nil {
		r.pool.stop()
	}
}

// appendEvent appends the frame a client sends for p: the bare text in
// plain format, a message event in JSON.
func (r *runner) appendEvent(b []byte, p payload, size int) []byte {
	if !r.json {
		return appendPayload(b, r.runID, p, size)
	}
	b = append(b, `{"type":"message","text":"`...)
	b = appendPayload(b, r.runID, p, size)
	return append(b, `"}`...)
}

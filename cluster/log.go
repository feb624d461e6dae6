package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Log is one node's handle on the cluster's room log: a NATS connection
// and the JetStream stream holding every room's records. It is safe for
// concurrent use: any goroutine may Publish or Redact (for any room) while
// one Consume runs.
type Log struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// maxRecord bounds a record's payload: the server's max_payload less
	// room for the headers.
	maxRecord int

	// heads is what this node knows of each room's end: the last record's
	// stream sequence and the room's last id, from its own
	// acknowledgements and from Consume. A stale head costs one retry
	// (the stream refuses the publish), never a wrong id.
	mu           sync.Mutex
	heads        map[string]head
	yields       map[string]yield       // rooms contended lately (publish.go)
	reserved     map[string]reservation // rooms' id bounds as this node knows them (ids.go)
	ids          jetstream.KeyValue     // the id reservations' bucket (ids.go)
	reservations atomic.Uint64          // Stats (ids.go)

	records    atomic.Uint64 // Stats
	conflicts  atomic.Uint64
	retries    atomic.Uint64
	stalls     atomic.Uint64
	applied    atomic.Uint64 // stream sequence of the last record Consume applied
	received   atomic.Uint64 // records Consume's reader decoded (applied or queued); tests wait on it
	stallAfter time.Duration // consume.go
	markerTTL  time.Duration // buckets.go (0 = markerTTL; tests shorten it)
	consuming  atomic.Bool
	connected  atomic.Bool
	stateMu    sync.Mutex // orders OnState calls with connected's changes
	isClosed   atomic.Bool
}

// head is where a room's records end: seq is its last record's stream
// sequence (0 = the room has no record in the stream), id the room's last
// message id.
type head struct {
	seq, id uint64
}

// Open connects to NATS and creates the stream, or updates its settings
// (replicas, limits) to cfg's, and the bucket of the rooms' id
// reservations (<stream>_ids, ids.go). It fails when NATS cannot be
// reached (wrapping ErrUnavailable) or refuses the stream.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, log: cfg.Logger, heads: make(map[string]head), yields: make(map[string]yield), reserved: make(map[string]reservation), stallAfter: stallAfter}
	opts, err := cfg.natsOptions(l)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %v", ErrUnavailable, redact(cfg.URL), err)
	}
	l.nc = nc
	l.connected.Store(true)
	l.maxRecord = int(nc.MaxPayload()) - 1024
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.PublishTimeout))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	l.js = js
	scfg := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "moonchat room log (package cluster)",
		Subjects:    streamSubjects(cfg.Stream),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		// Publish's retries reuse their record's Nats-Msg-Id: this window
		// (far longer than PublishTimeout) stores a record once even when
		// its acknowledgement was lost. JetStream wants it no longer
		// than MaxAge.
		Duplicates: 2 * time.Minute,
		// Reads of a room's end must come from the stream's leader, not
		// from a replica that may lag behind it (publish.go).
		AllowDirect: false,
	}
	if cfg.MaxAge > 0 && cfg.MaxAge < scfg.Duplicates {
		scfg.Duplicates = cfg.MaxAge
	}
	scfg.MaxMsgsPerSubject = -1
	if cfg.MaxPerRoom > 0 {
		scfg.MaxMsgsPerSubject = int64(cfg.MaxPerRoom)
	}
	if err := l.checkExisting(ctx, scfg); err != nil {
		l.Close()
		return nil, err
	}
	s, err := js.CreateOrUpdateStream(ctx, scfg)
	if err != nil {
		err = l.unavailable("stream "+cfg.Stream, err)
		l.Close()
		return nil, err
	}
	l.stream = s
	if err := l.openIDs(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// checkExisting refuses a stream of the same name that is not a moonchat
// room log (other subjects: updating it would take them away from its
// owner), and logs the settings an update will change: every node should
// have the same, and the last one started wins.
func (l *Log) checkExisting(ctx context.Context, want jetstream.StreamConfig) error {
	s, err := l.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return l.unavailable("stream "+want.Name, err)
	}
	have := s.CachedInfo().Config
	if !slices.Equal(have.Subjects, want.Subjects) {
		return fmt.Errorf("cluster: stream %s exists with subjects %v, not moonchat's %v: choose another [cluster] stream",
			want.Name, have.Subjects, want.Subjects)
	}
	if have.Replicas != want.Replicas || have.MaxAge != want.MaxAge || have.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		l.log.Warn("cluster: changing the stream's settings to this node's (every node should have the same)",
			"stream", want.Name,
			"replicas", fmt.Sprint(have.Replicas, "→", want.Replicas),
			"max_age", fmt.Sprint(have.MaxAge, "→", want.MaxAge),
			"max_per_room", fmt.Sprint(have.MaxMsgsPerSubject, "→", want.MaxMsgsPerSubject))
	}
	return nil
}

// redact hides a URL's credentials for an error message.
func redact(url string) string {
	if i, j := strings.Index(url, "//"), strings.LastIndexByte(url, '@'); i >= 0 && j > i {
		return url[:i+2] + "***@" + url[j+1:]
	}
	return url
}

// Connected reports whether the connection to NATS is up now.
func (l *Log) Connected() bool { return l.connected.Load() && !l.isClosed.Load() }

// setState records a connection change and tells Config.OnState.
func (l *Log) setState(up bool) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.connected.Swap(up) == up {
		return
	}
	if l.cfg.OnState != nil {
		l.cfg.OnState(up)
	}
}

func (l *Log) disconnected(_ *nats.Conn, err error) {
	if l.isClosed.Load() {
		return
	}
	l.log.Warn("cluster: NATS connection lost; posts are refused until it is back", "err", err)
	l.setState(false)
}

func (l *Log) reconnected(nc *nats.Conn) {
	l.log.Info("cluster: NATS connection back", "server", nc.ConnectedUrlRedacted())
	l.setState(true)
}

// closed: the connection ended for good. After Close that is expected
// and OnState is not called (the server is shutting down, not losing
// NATS).
func (l *Log) closed(_ *nats.Conn) {
	if l.isClosed.Load() {
		return
	}
	l.log.Error("cluster: NATS connection closed; posts are refused")
	l.setState(false)
}

// Close closes the connection. A running Consume returns ErrClosed.
func (l *Log) Close() error {
	if l.isClosed.Swap(true) {
		return nil
	}
	l.nc.Close()
	return nil
}

// Last returns the room's last id and the stream sequence of its last
// record, as the stream's leader has them now. For a room with no record
// in the stream, seq is 0 and id is the higher of Config.Floor's (0
// without one) and the room's id reservation (ids.go): the id after
// which its next record is numbered.
func (l *Log) Last(ctx context.Context, key string) (id, seq uint64, err error) {
	h, err := l.fetchHead(ctx, key)
	return h.id, h.seq, err
}

// fetchHead asks the stream for key's last record and remembers it.
func (l *Log) fetchHead(ctx context.Context, key string) (head, error) {
	h, _, err := l.fetchHeadOf(ctx, key, "")
	return h, err
}

// learn records h as key's head when it is newer than the one known.
func (l *Log) learn(key string, h head) {
	l.mu.Lock()
	if h.seq > l.heads[key].seq {
		l.heads[key] = h
	}
	l.mu.Unlock()
}

// known returns key's head as this node knows it.
func (l *Log) known(key string) (head, bool) {
	l.mu.Lock()
	h, ok := l.heads[key]
	l.mu.Unlock()
	return h, ok
}

// usable returns ErrClosed or ErrUnavailable when no request can be made
// now: a request made while reconnecting would only wait for its timeout.
func (l *Log) usable() error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	if l.nc.Status() != nats.CONNECTED {
		return ErrUnavailable
	}
	return nil
}

// unavailable wraps a request's error: ErrUnavailable when NATS or
// JetStream did not answer, the error itself otherwise.
func (l *Log) unavailable(what string, err error) error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	// 503: "JetStream system temporarily unavailable" and the like, while
	// a JetStream cluster elects a leader.
	var apiErr *jetstream.APIError
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("cluster: %s: %w", what, err)
}

// Stats are a Log's counters since Open, for /metrics.
type Stats struct {
	// Records counts the records this node published (acknowledged).
	Records uint64
	// Conflicts counts sends the stream refused because another node had
	// appended to the room first: each cost a re-read and a renumbered
	// send. Many mean rooms busy on several nodes at once.
	Conflicts uint64
	// Retries counts sends and reads repeated after no answer (a
	// JetStream leader election, a lost acknowledgement).
	Retries uint64
	// Stalls counts consumers Consume recreated because they delivered
	// nothing for a while although the stream had more (consume.go).
	Stalls uint64
	// Applied is the stream sequence of the last record Consume applied.
	Applied uint64
	// Reservations counts the id reservations this node wrote (ids.go):
	// one per room every 1000 ids, each a round trip before a publish.
	Reservations uint64
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{Records: l.records.Load(), Conflicts: l.conflicts.Load(), Retries: l.retries.Load(), Stalls: l.stalls.Load(), Applied: l.applied.Load(),
		Reservations: l.reservations.Load()}
}

// Applied returns the stream sequence of the last record Consume applied
// (or the sequence it was started after).
func (l *Log) Applied() uint64 { return l.applied.Load() }

// Lag returns how many stream sequences this node has yet to apply: the
// stream's last sequence less Applied (for moonchat cluster status).
func (l *Log) Lag(ctx context.Context) (uint64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, l.unavailable("stream info", err)
	}
	if a := l.applied.Load(); info.State.LastSeq > a {
		return info.State.LastSeq - a, nil
	}
	return 0, nil
}

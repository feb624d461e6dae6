package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// This file holds what the key-value parts of the package (State,
// Presence, ScriptKV, Lease) share: creating their buckets, naming keys,
// reading a bucket's current values in bulk (scan) and following its
// changes (follow).

// The buckets, named after Config.Stream (docs in doc.go).
const (
	bucketState  = "_state"  // State: restrictions, room settings, name owners, ignore lists
	bucketRoster = "_roster" // Presence: members and the name keys they hold
	bucketNodes  = "_nodes"  // node heartbeats and leases
	bucketKV     = "_kv"     // ScriptKV
)

// markerTTL is how long a bucket keeps the marker of a removed key: a
// watcher cut off for longer than half of it loads the bucket afresh
// instead of resuming (follow's reload), as the markers of what was
// removed meanwhile may be gone.
const markerTTL = 15 * time.Minute

// markers is the Log's markerTTL.
func (l *Log) markers() time.Duration {
	if l.markerTTL > 0 {
		return l.markerTTL
	}
	return markerTTL
}

// purgeTTL is the option of every removal that leaves an expiring marker.
func (l *Log) purgeTTL() jetstream.KVDeleteOpt { return jetstream.PurgeTTL(l.markers()) }

// openBucket creates the bucket stream+suffix (file storage, the Log's
// replicas, one value per key), or updates it to these settings. The
// buckets whose keys come and go (all but <stream>_nodes) remove keys
// with purges whose markers expire after markerTTL (LimitMarkerTTL lets a
// marker have a TTL): removed keys do not pile up in the bucket, nor in
// every node's initial load.
func (l *Log) openBucket(ctx context.Context, suffix, what string) (jetstream.KeyValue, error) {
	var markers time.Duration
	if suffix != bucketNodes {
		markers = l.markers()
	}
	if err := l.usable(); err != nil {
		return nil, l.unreachable("bucket "+l.cfg.Stream+suffix, err)
	}
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      l.cfg.Stream + suffix,
		Description: "moonchat " + what + " (package cluster)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
		// The markers of removals expire: a watcher cut off for longer
		// than markerTTL/2 loads the bucket afresh (follow's reload).
		LimitMarkerTTL: markers,
	})
	if err != nil {
		return nil, l.unreachable("bucket "+l.cfg.Stream+suffix, err)
	}
	return kv, nil
}

// unreachable is unavailable for the key-value parts: an error meaning
// that NATS cannot be reached wraps chat.ErrUnavailable as well as
// ErrUnavailable, so that the chat server, which knows only its own
// errors, refuses the change as "unavailable" (fail closed).
func (l *Log) unreachable(what string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		if errors.Is(err, chat.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
	}
	err = l.unavailable(what, err)
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
	}
	return err
}

// tok makes s one key token: unpadded base64url (as subject.go does for
// subjects), "=" for the empty string (which base64url never produces).
func tok(s string) string {
	if s == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// untok is tok's inverse.
func untok(t string) (string, error) {
	if t == "=" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(t)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%w: key token %q", ErrCorrupt, t)
	}
	return string(b), nil
}

// change is one stored value or removal of a bucket's key, as scan and
// follow hand them over.
type change struct {
	Key      string
	Value    []byte
	Revision uint64 // the bucket stream's sequence
	Deleted  bool   // a delete or purge marker (Value empty)
	Time     time.Time
}

// kvStream is the stream behind bucket, and the prefix of its subjects.
func kvStream(bucket string) (stream, prefix string) {
	return "KV_" + bucket, "$KV." + bucket + "."
}

// toChange reads a bucket stream's message.
func toChange(prefix string, m jetstream.Msg) (change, error) {
	md, err := m.Metadata()
	if err != nil {
		return change{}, err
	}
	c := change{Key: strings.TrimPrefix(m.Subject(), prefix), Value: m.Data(), Revision: md.Sequence.Stream, Time: md.Timestamp}
	if h := m.Headers(); h != nil {
		switch {
		case h.Get("KV-Operation") != "":
			c.Deleted = true // DEL or PURGE
		case h.Get(jetstream.MarkerReasonHeader) != "":
			c.Deleted = true // a limit removed it
		}
	}
	return c, nil
}

// scan calls fn with the current value of every key of bucket matching
// one of filters (key patterns: "r.>"), removed keys left out, and
// returns once it has seen every value stored before it began. It reads
// through one ephemeral consumer, in batches: the cost is one request per
// batch, not one per key.
func (l *Log) scan(ctx context.Context, bucket string, filters []string, fn func(change) error) error {
	if err := l.usable(); err != nil {
		return l.unreachable("reading "+bucket, err)
	}
	stream, prefix := kvStream(bucket)
	subjects := make([]string, len(filters))
	for i, f := range filters {
		subjects[i] = prefix + f
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	c, err := l.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return l.unreachable("reading "+bucket, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = l.js.DeleteConsumer(dctx, stream, c.CachedInfo().Name) // else InactiveThreshold does
		cancel()
	}()
	// Each fetch asks for what is pending, no more: a fetch waits until
	// its batch is full.
	pending := c.CachedInfo().NumPending
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 512)), jetstream.FetchMaxWait(l.cfg.PublishTimeout))
		if err != nil {
			return l.unreachable("reading "+bucket, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			ch, err := toChange(prefix, m)
			if err != nil {
				return l.unreachable("reading "+bucket, err)
			}
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
			if ch.Deleted {
				continue
			}
			if err := fn(ch); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return l.unreachable("reading "+bucket, err)
		}
		if got == 0 {
			return l.unreachable("reading "+bucket, nats.ErrTimeout)
		}
	}
	return nil
}

// connCheck is how often followFrom looks at the connection.
const connCheck = 250 * time.Millisecond

// knownKeys are the keys a watcher has handed over as present, so that
// a load afresh (reload) can tell which were removed meanwhile: their
// removal markers may have expired, so the load itself cannot say.
type knownKeys map[string]bool

// saw records c as handed over.
func (k knownKeys) saw(c change) {
	if c.Deleted {
		delete(k, c.Key)
	} else {
		k[c.Key] = true
	}
}

// reload is the reload of a watcher whose loads afresh come after
// interruptions longer than after: gone is called for every known key the
// load did not hand over again.
func (k knownKeys) reload(after time.Duration, gone func(key string)) *reload {
	return &reload{
		after: after,
		begin: func() {
			for key := range k {
				k[key] = false
			}
		},
		done: func() {
			for key, seen := range k {
				if !seen {
					delete(k, key)
					gone(key)
				}
			}
		},
	}
}

// reload lets follow load a bucket afresh: begin is called before the
// current value of every key is handed over, done once they all were.
// follow loads afresh at its start and, when reload is given, after an
// interruption longer than after (markers of removals older than that may
// be gone: the caller drops what begin..done did not hand over again).
type reload struct {
	after       time.Duration
	begin, done func()
}

// follow calls fn with every change of bucket's keys matching filters:
// first the current value of each (removals included, so that a caller
// that held an older state drops it), then every later change, in the
// bucket's order. After an interruption (NATS unreachable, the consumer
// lost) it starts again after the last revision it handed over: a change
// may be repeated, none skipped (only overwritten ones, which the bucket
// no longer holds); or, with rl and after a long interruption, it loads
// afresh (rl). It runs until ctx ends (returning ctx.Err()), the Log is
// closed (ErrClosed) or fn fails (its error).
func (l *Log) follow(ctx context.Context, bucket string, filters []string, rl *reload, fn func(change) error) error {
	stream, prefix := kvStream(bucket)
	subjects := make([]string, len(filters))
	for i, f := range filters {
		subjects[i] = prefix + f
	}
	var last uint64
	var down time.Time // when the current interruption began (zero: none)
	logged := false
	for {
		if rl != nil && !down.IsZero() && time.Since(down) > rl.after {
			last = 0 // load afresh
		}
		started := false
		err := l.followFrom(ctx, stream, prefix, subjects, &last, &started, rl, fn)
		if started || down.IsZero() {
			down = time.Now() // it followed until now
		}
		if end, stop := l.retryOrStop(ctx, err, !logged, "cluster: following a bucket paused; retrying", "bucket", bucket, "after", last); stop {
			return end
		}
		logged = true
	}
}

// followFrom runs one ordered consumer of follow after *last (0: a fresh
// load) until it fails.
func (l *Log) followFrom(ctx context.Context, stream, prefix string, subjects []string, last *uint64, started *bool, rl *reload, fn func(change) error) error {
	if err := l.usable(); err != nil {
		return err
	}
	fresh := *last == 0
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	if !fresh {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = *last + 1
	}
	c, err := l.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullHeartbeat(time.Second), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return err
	}
	defer it.Stop()
	*started = true
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// The client library recreates an ordered consumer by itself after a
	// reconnection, from where it was: follow would never know how long
	// it was cut off. It stops the consumer instead once the connection
	// is lost, and decides itself how to go on (resume, or load afresh).
	done := make(chan struct{})
	defer close(done)
	var lost atomic.Bool
	go func() { // ends when followFrom returns
		t := time.NewTicker(connCheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if l.usable() != nil {
					lost.Store(true)
					it.Stop()
					return
				}
			}
		}
	}()
	loading := fresh && rl != nil
	if loading {
		rl.begin()
		if info := c.CachedInfo(); info != nil && info.NumPending == 0 {
			loading = false
			rl.done()
		}
	}
	for {
		m, err := it.Next()
		if err != nil {
			if lost.Load() {
				return ErrUnavailable
			}
			return err
		}
		ch, err := toChange(prefix, m)
		if err != nil {
			return err
		}
		if ch.Revision <= *last {
			continue // delivered before an interruption
		}
		if err := fn(ch); err != nil {
			return fatalError{err}
		}
		*last = ch.Revision
		if loading {
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				loading = false
				rl.done()
			}
		}
	}
}

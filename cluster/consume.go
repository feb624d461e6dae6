package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// Entry is one record of the stream as Consume delivers it: a batch of a
// room's messages, or a redaction.
type Entry struct {
	// Seq is the record's stream sequence: what the caller keeps as
	// "applied" and gives to Consume after a restart.
	Seq uint64
	// Key is the room's name or the conversation's chat.ConversationKey.
	Key string
	// Msgs are a batch's messages, ids contiguous and following the
	// room's previous batch (Room = Key); nil for a redaction.
	Msgs []chat.Message
	// Redact is the id a redaction removes (0 for a batch).
	Redact uint64
	// Time is when the stream stored the record.
	Time time.Time
}

// Bounds of one batch of ConsumeBatch: it hands over at most
// BatchMaxEntries entries whose records (the stream messages' data)
// total at most BatchMaxBytes, or a single record larger than that.
// Why these: a batch's first record is delivered only once the whole
// batch is in the store, so a batch must stay one short transaction:
// 128 one-message records took about 0.8 ms in all, fsync included
// (store's BenchmarkApplyBatch: about 156,000 records/s in batches of
// 128, 3,200 one by one, on the 2-core test machine), far more than a
// stream brings; the byte bound keeps a batch of large records
// (up to the NATS server's max_payload each) from making one huge
// transaction.
const (
	BatchMaxEntries = 128
	BatchMaxBytes   = 1 << 20
)

// Consume delivers the stream's records after stream sequence after (0 =
// from the start) to apply, one at a time and in the stream's order,
// which is every room's order on every node. It blocks until ctx ends
// (returning ctx.Err()), the Log is closed (ErrClosed), apply returns an
// error (returned as is: the record was not applied and Applied does not
// count it), or a record does not decode (ErrCorrupt, ErrVersion: the
// caller must not skip it silently), or the stream ends before after
// (ErrStreamReset: it was created again). While NATS is unreachable it
// waits and resumes after the last record applied: no gap, no duplicate.
//
// One Consume (or ConsumeBatch) runs at a time per Log (else
// ErrConsuming). Records that the stream's limits dropped before this
// node read them are not delivered: Entry.Seq then jumps, and the room's
// ids jump with it (the replica sees a gap, as after its own pruning).
// Consume is ConsumeBatch with batches of one entry.
func (l *Log) Consume(ctx context.Context, after uint64, apply func(Entry) error) error {
	return l.consume(ctx, after, 1, func(es []Entry) error { return apply(es[0]) })
}

// ConsumeBatch is Consume handing apply the records that have queued up
// rather than one at a time: each call gets the next entries in the
// stream's order, at least one, and besides the first only those this
// node has already received (it never waits for more once it has one),
// at most BatchMaxEntries and BatchMaxBytes of records. So a consumer
// that keeps up gets batches of one, and one that fell behind (its store
// was busy) gets what arrived meanwhile in one call: one store
// transaction for them instead of one each (store.DB.ApplyBatch).
//
// When apply returns an error, ConsumeBatch returns that error as is and
// Applied counts no entry of the batch: a caller whose apply put part of
// the batch in its store (one by one after the whole failed) resumes
// after its own applied position, as it always should. The slice is
// reused after apply returns: apply must not keep it (the entries' Msgs
// it may).
// Everything else is as for Consume: the ordering, the errors, the
// watchdog, resuming after NATS comes back, one consumer per Log.
func (l *Log) ConsumeBatch(ctx context.Context, after uint64, apply func([]Entry) error) error {
	return l.consume(ctx, after, BatchMaxEntries, apply)
}

// consume is Consume and ConsumeBatch: batches of at most maxEntries.
func (l *Log) consume(ctx context.Context, after uint64, maxEntries int, apply func([]Entry) error) error {
	if !l.consuming.CompareAndSwap(false, true) {
		return ErrConsuming
	}
	defer l.consuming.Store(false)
	l.applied.Store(after)
	logged := false
	for {
		err := l.consumeFrom(ctx, maxEntries, apply)
		if end, stop := l.retryOrStop(ctx, err, !logged, "cluster: consuming the stream paused; retrying", "after", l.applied.Load()); stop {
			return end
		}
		logged = true
	}
}

// fatalError ends Consume: apply's error or a record that does not
// decode. Any other error of consumeFrom is retried.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// retryOrStop is the end of one round of a loop that follows the stream
// or a bucket (consume, follow) after it failed with err: stop (and
// return end) when ctx ended, the Log closed or err is a fatalError;
// otherwise log msg with args and err once (first) and wait
// Config.ReconnectWait before the next round (stopping if ctx ends
// meanwhile).
func (l *Log) retryOrStop(ctx context.Context, err error, first bool, msg string, args ...any) (end error, stop bool) {
	var fatal fatalError
	switch {
	case ctx.Err() != nil:
		return ctx.Err(), true
	case l.isClosed.Load():
		return ErrClosed, true
	case errors.As(err, &fatal):
		return fatal.err, true
	}
	if first {
		l.log.Warn(msg, append(args, "err", err)...)
	}
	select {
	case <-ctx.Done():
		return ctx.Err(), true
	case <-time.After(l.cfg.ReconnectWait):
		return nil, false
	}
}

// received is one record the reader of consumeFrom took from the
// consumer, decoded, with its size (the stream message's data), or the
// error that ended the reader.
type received struct {
	e    Entry
	size int
	err  error
}

// consumeFrom runs one ordered consumer from the record after Applied
// until it fails. A reader goroutine takes the records from the consumer
// and decodes them ahead (up to maxEntries of them queued) while this
// one applies: whatever is queued when apply returns is the next batch.
func (l *Log) consumeFrom(ctx context.Context, maxEntries int, apply func([]Entry) error) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: streamSubjects(l.cfg.Stream),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if a := l.applied.Load(); a > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = a + 1
	}
	if err := l.usable(); err != nil {
		return err
	}
	if a := l.applied.Load(); a > 0 {
		// A stream's last sequence never goes back (purges and limits
		// keep it): one below what was applied is another stream.
		info, err := l.stream.Info(ctx)
		if err != nil {
			return l.unavailable("stream info", err)
		}
		if last := info.State.LastSeq; last < a {
			return fatalError{fmt.Errorf("%w: stream %s ends at sequence %d, this node applied up to %d", ErrStreamReset, l.cfg.Stream, last, a)}
		}
	}
	c, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, cfg)
	if err != nil {
		return err
	}
	// A heartbeat a second: a consumer whose server died is noticed and
	// recreated (after the last record delivered) in about two seconds,
	// not the client's default ten.
	it, err := c.Messages(jetstream.PullHeartbeat(time.Second), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return err
	}
	done := make(chan struct{})
	reads := make(chan received, maxEntries)
	readerDone := make(chan struct{})
	go func() { // the reader; ends once it is stopped or done is closed
		defer close(readerDone)
		l.read(it, reads, done)
	}()
	defer func() {
		close(done)
		it.Stop()
		<-readerDone
	}()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var stalled atomic.Bool
	go l.watch(ctx, done, &stalled, it.Stop) // ends when consumeFrom returns
	batch := make([]Entry, 0, maxEntries)
	var next *received // taken from reads but not in the last batch
	for {
		// Records still queued are not applied once ctx ended or the
		// Log closed: the caller is stopping, and the next consumer
		// starts after Applied anyway.
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.isClosed.Load() {
			return ErrClosed
		}
		r := next
		if r == nil {
			rr := <-reads // the reader always ends with an error here
			r = &rr
		}
		next = nil
		if r.err != nil {
			if stalled.Load() {
				return errStalled
			}
			return r.err
		}
		batch = append(batch[:0], r.e)
		size := r.size
	fill:
		for len(batch) < maxEntries {
			select {
			case rr := <-reads:
				if rr.err != nil || size+rr.size > BatchMaxBytes {
					next = &rr // the error once the batch is applied
					break fill
				}
				batch = append(batch, rr.e)
				size += rr.size
			default:
				break fill // nothing more received: never wait
			}
		}
		if err := apply(batch); err != nil {
			return fatalError{err}
		}
		l.applied.Store(batch[len(batch)-1].Seq)
		clear(batch) // drop the entries' messages until the next batch
	}
}

// read is consumeFrom's reader: it takes the records from it in the
// stream's order, decodes them and queues them on reads, until Next
// fails or a record does not decode (that error is queued last) or done
// is closed (consumeFrom returned).
func (l *Log) read(it jetstream.MessagesContext, reads chan<- received, done <-chan struct{}) {
	for {
		r := l.receive(it)
		select {
		case reads <- r:
		case <-done:
			return
		}
		if r.err != nil {
			return
		}
	}
}

// receive takes the next record from it and decodes it.
func (l *Log) receive(it jetstream.MessagesContext) received {
	msg, err := it.Next()
	if err != nil {
		return received{err: err}
	}
	md, err := msg.Metadata()
	if err != nil {
		return received{err: err}
	}
	seq := md.Sequence.Stream
	key, err := keyOf(l.cfg.Stream, msg.Subject())
	if err != nil {
		return received{err: fatalError{fmt.Errorf("stream sequence %d: %w", seq, err)}}
	}
	r, err := decodeRecord(key, msg.Data())
	if err != nil {
		return received{err: fatalError{fmt.Errorf("room %q, stream sequence %d: %w", key, seq, err)}}
	}
	l.learn(key, head{seq: seq, id: r.lastID()})
	l.received.Add(1)
	e := Entry{Seq: seq, Key: key, Time: md.Timestamp.UTC()}
	if r.kind == kindBatch {
		e.Msgs = r.msgs
	} else {
		e.Redact = r.target
	}
	return received{e: e, size: len(msg.Data())}
}

// stallAfter is how long Consume lets its consumer deliver nothing while
// the stream holds records it has not applied before it recreates it
// (Log.stallAfter; tests shorten it).
const stallAfter = 3 * time.Second

// errStalled: the watchdog stopped a consumer that delivered nothing.
var errStalled = errors.New("cluster: consumer stalled; recreated")

// watch is the watchdog of one consumer: every stallAfter in which
// Applied did not move, it asks the stream for its last sequence, and if
// records beyond Applied exist it marks the consumer stalled and stops it
// (consumeFrom returns, Consume starts a new one after Applied). The
// client library recreates an ordered consumer itself when its server
// goes, but TestClusterServerLoss caught it stuck for 30 s and more after
// the stream's leader was killed; this bounds any such stall, whatever
// its cause. A slow apply only costs a needless restart (no record is
// lost or repeated: the new consumer starts after Applied).
func (l *Log) watch(ctx context.Context, done <-chan struct{}, stalled *atomic.Bool, stop func()) {
	t := time.NewTicker(l.stallAfter)
	defer t.Stop()
	last := l.applied.Load()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		a := l.applied.Load()
		if a != last {
			last = a
			continue
		}
		if l.usable() != nil {
			continue // the connection's own recovery comes first
		}
		ictx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		info, err := l.stream.Info(ictx)
		cancel()
		if err != nil || info.State.LastSeq <= a || l.applied.Load() != a {
			continue
		}
		l.stalls.Add(1)
		l.log.Warn("cluster: consumer delivered nothing while the stream has more; recreating it",
			"applied", a, "stream_last", info.State.LastSeq)
		stalled.Store(true)
		stop()
		return
	}
}

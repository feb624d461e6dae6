package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The audit log is a stream of its own, <stream>_audit, append-only: one
// message per chat.AuditEntry (JSON) on the subject
// <stream>.audit.<room token> ("=" for room ""), so that a room's entries
// are read with a subject filter and not by reading everyone's.

// auditSubject is the subject of room's entries ("*" for every room's).
func auditSubject(stream, room string) string {
	if room == "*" {
		return stream + ".audit.*"
	}
	return stream + ".audit." + tok(room)
}

// openAudit creates the audit stream or updates its limits.
func (l *Log) openAudit(ctx context.Context, maxAge time.Duration) (jetstream.Stream, error) {
	name := l.cfg.Stream + "_audit"
	s, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "moonchat audit log (package cluster)",
		Subjects:    []string{auditSubject(l.cfg.Stream, "*")},
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
	})
	if err != nil {
		return nil, l.unreachable("stream "+name, err)
	}
	return s, nil
}

// AppendAudit adds e to the audit log; it returns once JetStream
// acknowledged it.
func (s *State) AppendAudit(e chat.AuditEntry) error {
	if err := s.ready("audit"); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.l.js.Publish(ctx, auditSubject(s.l.cfg.Stream, e.Room), b); err != nil {
		return s.l.unreachable("audit", err)
	}
	return nil
}

// Audit returns up to n entries of room ("" = every room) at or after
// since, oldest first (the n newest of them). It reads the stream from
// since on (the store's time of each entry; entries are stored as they
// are made, so it is their Time give or take the clocks' difference) and
// keeps the last n.
func (s *State) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	if err := s.ready("audit"); err != nil {
		return nil, err
	}
	filter := auditSubject(s.l.cfg.Stream, "*")
	if room != "" {
		filter = auditSubject(s.l.cfg.Stream, room)
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	}
	if !since.IsZero() {
		// A minute early: the store's clock may be behind the clock
		// that stamped Time; entries before since are dropped below.
		t := since.Add(-time.Minute)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	ctx, cancel := s.ctx()
	defer cancel()
	c, err := s.audit.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, s.l.unreachable("audit", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.audit.DeleteConsumer(dctx, c.CachedInfo().Name) // else InactiveThreshold does
		cancel()
	}()
	ring := make([]chat.AuditEntry, 0, min(n, 1024))
	next := 0 // where the next entry goes once ring is full
	pending := c.CachedInfo().NumPending
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 512)), jetstream.FetchMaxWait(s.l.cfg.PublishTimeout)) // a fetch waits for a full batch
		if err != nil {
			return nil, s.l.unreachable("audit", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
			var e chat.AuditEntry
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				return nil, fmt.Errorf("%w: audit entry: %v", ErrCorrupt, err)
			}
			if e.Time.Before(since) {
				continue
			}
			if len(ring) < n {
				ring = append(ring, e)
				continue
			}
			ring[next] = e
			next = (next + 1) % n
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, s.l.unreachable("audit", err)
		}
		if got == 0 && pending > 0 {
			return nil, s.l.unreachable("audit", nats.ErrTimeout)
		}
	}
	return slices.Concat(ring[next:], ring[:next]), nil
}

package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is one cluster-wide lease (the timers' lease: scripts' timers run
// on one node of the cluster at a time), a key l.<name token> in the
// bucket <stream>_nodes holding its holder's id. The holder renews it
// every TTL/4 with a revision check; a node that sees the key unchanged
// for TTL (by its own clock, from when it first saw that revision) takes
// it over with a revision check, so one node wins. The holder counts
// itself the holder only for TTL/2 after it sent its last successful
// renewal: it has stopped counting itself the holder before anyone can
// take over (clocks' rates, not their readings, need to agree).
type Lease struct {
	l    *Log
	kv   jetstream.KeyValue
	key  string // in the bucket: "l." and the name's token
	name string // as given to OpenLease, for the logs
	ttl  time.Duration
	self string // this holder's id: node and a random id

	mu        sync.Mutex
	rev       uint64    // the key's revision as this Lease wrote it last (held) or saw it
	heldUntil time.Time // Held until then (zero: not held)
	seenSince time.Time // when rev, another's, was first seen
}

// OpenLease opens the lease name (ttl 0 = 10s) on l's connection. Nothing
// is held until Run has acquired it.
func (l *Log) OpenLease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	kv, err := l.openBucket(ctx, bucketNodes, "node heartbeats and leases")
	if err != nil {
		return nil, err
	}
	return &Lease{l: l, kv: kv, key: "l." + tok(name), name: name, ttl: ttl, self: tok(l.cfg.Node) + "." + newIncarnation()}, nil
}

// Held reports whether this node holds the lease now.
func (le *Lease) Held() bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return time.Now().Before(le.heldUntil)
}

// Run acquires the lease when it is free or its holder stopped renewing
// it, and renews it while held, every TTL/4, until ctx ends; it then
// gives it up (so that another node takes it at once) and returns
// ctx.Err(). Run it in one goroutine.
func (le *Lease) Run(ctx context.Context) error {
	t := time.NewTicker(le.ttl / 4)
	defer t.Stop()
	for {
		le.step(ctx)
		select {
		case <-ctx.Done():
			le.giveUp()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// step renews the lease or tries to take it.
func (le *Lease) step(ctx context.Context) {
	if le.l.usable() != nil {
		return // Held turns false by itself at heldUntil
	}
	ctx, cancel := context.WithTimeout(ctx, min(le.l.cfg.PublishTimeout, le.ttl/4))
	defer cancel()
	sent := time.Now()
	le.mu.Lock()
	held, rev := !le.heldUntil.IsZero(), le.rev
	le.mu.Unlock()
	if held {
		nrev, err := le.kv.Update(ctx, le.key, []byte(le.self), rev)
		le.mu.Lock()
		defer le.mu.Unlock()
		switch {
		case err == nil:
			le.rev, le.heldUntil = nrev, sent.Add(le.ttl/2)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			le.heldUntil = time.Time{} // taken over (this node was too slow)
			le.l.log.Warn("cluster: lease lost", "lease", le.name)
		}
		return
	}
	e, err := le.kv.Get(ctx, le.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		nrev, err := le.kv.Create(ctx, le.key, []byte(le.self))
		if err == nil {
			le.acquired(nrev, sent)
		}
		return
	case err != nil:
		return
	}
	if string(e.Value()) == le.self { // this node's own, its acknowledgement lost
		le.acquired(e.Revision(), sent)
		return
	}
	le.mu.Lock()
	if e.Revision() != le.rev {
		le.rev, le.seenSince = e.Revision(), time.Now()
	}
	stale := time.Since(le.seenSince) > le.ttl
	le.mu.Unlock()
	if !stale {
		return
	}
	if nrev, err := le.kv.Update(ctx, le.key, []byte(le.self), e.Revision()); err == nil {
		le.acquired(nrev, sent)
	}
}

func (le *Lease) acquired(rev uint64, sent time.Time) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.rev, le.heldUntil = rev, sent.Add(le.ttl/2)
	le.l.log.Info("cluster: lease acquired", "lease", le.name)
}

// giveUp deletes the key if this node still holds it.
func (le *Lease) giveUp() {
	le.mu.Lock()
	held, rev := !le.heldUntil.IsZero(), le.rev
	le.heldUntil = time.Time{}
	le.mu.Unlock()
	if !held || le.l.usable() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), le.l.cfg.PublishTimeout)
	defer cancel()
	_ = le.kv.Delete(ctx, le.key, jetstream.LastRevision(rev)) // else it lapses after TTL
}
